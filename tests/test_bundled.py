"""The bundled default model: prediction works with zero training."""

from mnist.checkpoint import BUNDLED_DIR, WEIGHTS_FILE, load_checkpoint
from mnist.train import evaluate


def test_bundled_model_is_small_and_described():
    size = (BUNDLED_DIR / WEIGHTS_FILE).stat().st_size
    assert size < 2 * 1024 * 1024
    ckpt = load_checkpoint()
    assert ckpt.arch == ckpt.config.arch
    assert ckpt.record.metrics.test_accuracy >= 0.993


def test_bundled_model_scores_at_least_99_3_on_mnist_test(mnist_data):
    result = evaluate(load_checkpoint().model, mnist_data.test_images, mnist_data.test_labels)
    assert result.accuracy >= 0.993
