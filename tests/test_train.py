import threading

import pytest
import torch

from mnist.config import OPTIMIZERS, SCHEDULERS, TrainConfig
from mnist.errors import ConfigError
from mnist.train import DoneEvent, EpochEvent, StepEvent, WeightAverage, evaluate, run_training, train


@pytest.mark.slow
def test_short_real_training_passes_95_percent(mnist_data):
    events = list(train(TrainConfig(epochs=1, log_every=50), mnist_data))
    steps = [e for e in events if isinstance(e, StepEvent)]
    epochs = [e for e in events if isinstance(e, EpochEvent)]
    done = events[-1]
    assert isinstance(done, DoneEvent) and not done.stopped
    assert done.test_accuracy >= 0.95
    assert len(epochs) == 1 and epochs[0].test_accuracy == pytest.approx(done.test_accuracy)
    assert [s.step for s in steps] == sorted({s.step for s in steps})  # strictly increasing
    assert steps[-1].step == steps[-1].total_steps == done.steps_done
    assert steps[-1].eta == pytest.approx(0.0)
    assert all(s.images_per_sec > 0 and s.lr > 0 for s in steps)
    assert done.history.epochs == epochs


def small_run(mnist_data, **changes):
    config = TrainConfig(train_limit=1024, batch_size=64, epochs=1, log_every=1, augment=True, **changes)
    events = list(train(config, mnist_data))
    return [e.loss for e in events if isinstance(e, StepEvent)], events[-1].model


@pytest.mark.slow
def test_same_seed_same_results_on_cpu(mnist_data):
    losses_a, model_a = small_run(mnist_data, seed=3)
    losses_b, model_b = small_run(mnist_data, seed=3)
    losses_c, _ = small_run(mnist_data, seed=4)
    assert losses_a == losses_b
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert losses_a != losses_c


@pytest.mark.slow
def test_stop_between_steps_returns_a_usable_model(mnist_data):
    stop = threading.Event()
    done = None
    for event in train(TrainConfig(batch_size=256, log_every=1), mnist_data, stop):
        if isinstance(event, StepEvent) and event.step == 40:
            stop.set()
        if isinstance(event, DoneEvent):
            done = event
    assert done.stopped and done.steps_done == 40
    assert done.epochs_done == 0
    assert done.test_accuracy > 0.5  # well above chance (0.1) after 40 steps


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_learns(mnist_data, optimizer):
    lr = {"sgd": 0.05, "adadelta": 1.0}.get(optimizer, 1e-3)
    config = TrainConfig(arch="mlp", optimizer=optimizer, lr=lr, train_limit=4096, batch_size=64, scheduler="none")
    assert run_training(config, mnist_data).test_accuracy > 0.75


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler_runs_and_shapes_the_rate(mnist_data, scheduler):
    config = TrainConfig(arch="mlp", scheduler=scheduler, epochs=2, train_limit=1024, batch_size=128, log_every=1)
    events = list(train(config, mnist_data))
    lrs = [e.lr for e in events if isinstance(e, StepEvent)]
    if scheduler == "none":
        assert set(lrs) == {config.lr}
    elif scheduler == "step":
        assert lrs[-1] == pytest.approx(config.lr * config.gamma)  # decayed once, after epoch 1
    else:
        assert lrs[-1] < config.lr * 0.1  # annealed towards zero by the end


def test_batch_larger_than_training_set_is_refused_before_work(mnist_data):
    with pytest.raises(ConfigError, match="larger than the 100 training images"):
        next(train(TrainConfig(train_limit=100, batch_size=128), mnist_data))


def test_evaluate_reports_consistent_metrics(mnist_data):
    model = run_training(TrainConfig(arch="mlp", train_limit=2048, scheduler="none", lr=1e-3), mnist_data).model
    result = evaluate(model, mnist_data.test_images, mnist_data.test_labels)
    n = len(mnist_data.test_labels)
    assert int(result.confusion.sum()) == n
    assert result.accuracy == pytest.approx(float(result.confusion.diag().sum()) / n)
    per_class = (result.confusion.diag().float() / result.confusion.sum(1).float()).tolist()
    assert result.per_class_accuracy == pytest.approx(per_class)
    wrong = result.misclassified()
    assert len(wrong) == n - int(result.confusion.diag().sum())
    assert all(w["label"] != w["predicted"] for w in wrong)
    assert all(w["label"] == int(mnist_data.test_labels[w["index"]]) for w in wrong[:50])
    confidences = [w["confidence"] for w in wrong]
    assert confidences == sorted(confidences, reverse=True)


def test_weight_average_follows_the_model_with_warmup_and_its_decay():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    average = WeightAverage(model, decay=0.9)
    start = average.model[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].num_batches_tracked += 5
    average.update()  # warm-up decay (1 + 1) / (10 + 1): mostly the new weights
    warm = 2 / 11
    torch.testing.assert_close(average.model[0].weight, warm * start + (1 - warm) * model[0].weight)
    assert int(average.model[1].num_batches_tracked) == 5  # integer buffers are copied, not averaged
    for _ in range(200):
        average.update()  # past the warm-up the decay is 0.9: the average converges to the weights
    torch.testing.assert_close(average.model[0].weight, model[0].weight)
    assert not any(p.requires_grad for p in average.model.parameters())


@pytest.mark.slow
def test_ema_run_evaluates_and_returns_the_averaged_weights(mnist_data):
    config = TrainConfig(train_limit=2048, batch_size=64, epochs=1, log_every=100)
    plain = run_training(config, mnist_data)
    averaged = run_training(config.replace(ema=0.95), mnist_data)
    # Same seed, same live weights; the returned model is the average, so it differs from the plain run's.
    a, b = plain.model.state_dict(), averaged.model.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    again = evaluate(averaged.model, mnist_data.test_images, mnist_data.test_labels)
    assert again.accuracy == pytest.approx(averaged.test_accuracy)
    assert averaged.test_accuracy > 0.9


def test_ema_decay_out_of_range_is_refused():
    with pytest.raises(ConfigError, match="ema must be in"):
        TrainConfig(ema=1.0)
