"""Short explanations in plain words, next to each picture a learner looks at: what it shows, what to notice.

Pure functions from numbers to text (no Streamlit, no torch): the pages and views pass in what they show
(a layer's channel count, a confusion matrix, a run's accuracies) and put the paragraph under the picture.
Each text reads as something a learner would write in their notes, using the current numbers where they help.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mnist.verdict import CONFIDENT
from studio.views import a_digit

OVERFIT_GAP = 0.01  # train accuracy this far above test accuracy: the model starts to learn the training set by heart
# What each stage a layer's values went through does to the image (mnist.inside.LayerActivation.stages).
STAGE_WORDS = {
    "Conv2d": "a convolution slides each small filter over the image and writes, at every spot, how well that "
    "spot matches the filter",
    "BatchNorm2d": "batch normalisation rescales each channel to a steady range",
    "ReLU": "ReLU turns every negative value into 0 (dark), keeping only the matches",
    "MaxPool2d": "pooling keeps the strongest value of each 2×2 patch, halving the width and height",
    "Dropout": "dropout (only while training) switches off random values",
    "Dropout2d": "dropout (only while training) switches off random channels",
    "Linear": "a linear layer weighs every input number and adds them up, once per unit",
}
# Where a position falls in an image split into thirds: (row third, column third) -> words.
ROW_WORDS = ("top", "middle", "bottom")
COLUMN_WORDS = ("left", "centre", "right")


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.2f}%"


def place_words(row: int, column: int, height: int, width: int) -> str:
    """Where (row, column) is in a height x width image, in words: "top left", "middle", "bottom centre"."""
    vertical = ROW_WORDS[min(2, 3 * row // max(1, height))]
    horizontal = COLUMN_WORDS[min(2, 3 * column // max(1, width))]
    if vertical == "middle" and horizontal == "centre":
        return "middle"
    return f"{vertical} {horizontal}" if horizontal != "centre" else f"{vertical} centre"


def strongest_channel(values: np.ndarray) -> tuple[int, float, str]:
    """A layer's (channels, H, W) maps: the channel with the highest value, that value, and where it is."""
    channels, height, width = values.shape
    peaks = values.reshape(channels, -1).max(1)
    channel = int(peaks.argmax())
    row, column = np.unravel_index(int(values[channel].argmax()), (height, width))
    return channel, float(peaks[channel]), place_words(int(row), int(column), height, width)


def stages_text(stages: Sequence[str]) -> str:
    """What the layer's stages do, in order, as one sentence; stages without words are left out."""
    said = [STAGE_WORDS[s] for s in stages if s in STAGE_WORDS]
    if not said:
        return ""
    text = "; then ".join(said)
    return text[0].upper() + text[1:] + "."


def conv_layer_text(
    name: str, channels: int, kernel: int | None, stages: Sequence[str], strongest: tuple[int, float, str], first: bool
) -> str:
    """One conv layer's feature maps: how many detectors, what they compute, which one fires most and where."""
    channel, peak, where = strongest
    size = f", each a {kernel}×{kernel} filter" if kernel else ""
    looks_at = "your drawing" if first else "the previous layer's maps"
    detectors = (
        f"Layer {name} has {channels} channels: {channels} different detectors{size}, each looking at {looks_at}."
    )
    fires = f"Channel {channel} fires most ({peak:.2f}), in the {where} of the image."
    return f"{detectors} {stages_text(stages)} {fires}".replace("  ", " ")


def feature_maps_text(layers: Sequence[tuple[str, int, int | None, Sequence[str], tuple[int, float, str]]]) -> str:
    """The feature-maps view: (name, channels, kernel, stages, strongest channel) per conv layer, first first."""
    if not layers:
        return ""
    first = conv_layer_text(*layers[0], first=True)
    if len(layers) == 1:
        return first
    last_name, last_channels = layers[-1][0], layers[-1][1]
    deeper = (
        f" Deeper layers ({', '.join(layer[0] for layer in layers[1:])}) combine the earlier maps: their "
        f"{last_channels} channels in layer {last_name} answer to whole parts of a digit (a loop, a corner, a "
        "stroke's end), on smaller maps. Bright means a strong match; each map is scaled to its own brightest spot."
    )
    return first + deeper


def hidden_units_text(units: int, active: int) -> str:
    """A linear-only model's hidden layer: how many units, how many respond to this drawing."""
    return (
        f"This model has no convolutions: its hidden layer has {plural(units, 'unit')}, each one a weighted sum "
        f"of all 784 pixels. {active:,} of them respond to your drawing (bright cells); the others stay at 0."
    )


def filters_text(count: int, kernel: int | None, kind: str = "conv") -> str:
    """The first layer's filters: what the coloured squares are and how to read one."""
    if kind != "conv":
        return (
            f"Each of these {count:,} squares is one unit's weights on the 28×28 pixels: red pixels push the unit "
            "up where your drawing has ink, blue ones push it down. Some look like blurry pieces of digits."
        )
    size = f"{kernel}×{kernel} " if kernel else ""
    return (
        f"These are the {count:,} filters of the first layer, each a {size}grid of weights learned in training. "
        "Red weights add up where the image has ink, blue ones take away: a filter red on its left and blue on "
        "its right answers to the right edge of a stroke (ink on one side, none on the other). Each filter "
        "makes one channel of the first feature maps."
    )


def digit_map_text(prediction: int, confidence: float) -> str:
    """The digit map with the drawing's star."""
    where = (
        f"Your drawing, the star, sits with the {prediction}s: the model reads it as {a_digit(prediction)} "
        f"({confidence:.0%})."
        if confidence >= CONFIDENT
        else f"The model is not sure about your drawing ({prediction} at {confidence:.0%}): its star may sit "
        "between two islands."
    )
    return (
        "Each dot is one of the 10,000 test images, placed by what the model's last hidden layer makes of it: "
        "images the model finds alike sit close together, so each digit forms its own island. Red rings are "
        f"images the model gets wrong; most sit at an island's edge or on another digit's island. {where}"
    )


def neighbours_text(labels: Sequence[int], prediction: int) -> str:
    """The nearest training images: how many share the model's answer."""
    agree = sum(1 for label in labels if label == prediction)
    return (
        f"These are the {len(labels)} training images the model finds most like your drawing (smaller distance: "
        f"more alike). {agree} of them are {prediction}s. The model learned from images like these, so when "
        "they are a mix of digits, its answer is a close call too."
    )


def fool_text(target: int, linf: float, l2: float, success: bool) -> str:
    """The attack's result: how small the change is, and why it matters."""
    if success:
        return (
            f"A change this small (no pixel moved by more than {linf:.2f} on a 0 to 1 scale) makes the model read "
            f"{a_digit(target)}, though to you the drawing looks the same. The model does not see digits the way "
            "people do: it adds up many faint pixel patterns, and nudging all of them a little adds up to a lot."
        )
    return (
        f"Within this budget (largest pixel change {linf:.2f}, total {l2:.2f}) no change made the model read "
        f"{a_digit(target)}. Allow a larger change: the more a digit looks like itself, the larger the change it takes."
    )


def probabilities_text(digit: int, confidence: float, threshold: float = CONFIDENT) -> str:
    """The probabilities chart and its line at `threshold`: above it the page names the digit, below it is unsure."""
    line = f"The dashed line is at {threshold:.0%}"
    if confidence >= threshold:
        state = (
            f"the tallest bar, {digit} at {confidence:.0%}, is above it, so the page reads your drawing as "
            f"{a_digit(digit)}"
        )
    else:
        state = (
            f"the tallest bar, {digit} at {confidence:.0%}, is below it, so the page says the model is not sure "
            "and names its top two"
        )
    return (
        "The model gives each digit a probability, and the ten add up to 100% (softmax turns its scores into "
        f"these shares). {line}: {state}."
    )


def label_smoothing_text(label_smoothing: float, confidence: float | None = None, threshold: float = CONFIDENT) -> str:
    """Why a model trained with label smoothing is rarely very sure; '' when it was trained without."""
    if label_smoothing <= 0:
        return ""
    if confidence is None:
        seen = ""
    elif confidence < threshold:
        seen = f' That is why even a clean digit can show only {confidence:.0%} and "not sure".'
    else:
        seen = f" That is why this drawing's tallest bar stops at {confidence:.0%}, not 100%."
    return (
        f"This model was trained with label smoothing {label_smoothing:g}: it was taught to keep "
        f"{label_smoothing:.0%} of its probability spread over the other digits on purpose, so it never learns "
        f"to be 100% sure.{seen} Its answer (the tallest bar) is what counts, not how tall it is."
    )


def ensemble_text(members: Sequence[float], ensemble: float) -> str:
    """An ensemble's accuracy against its members' (fractions); why it can score below its best member."""
    if not members:
        return ""
    best, worst = max(members), min(members)
    each = " + ".join(percent(m) for m in members)
    base = f"An ensemble averages its models' probabilities: {each} → {percent(ensemble)} together."
    if ensemble >= best:
        return f"{base} Their mistakes differ, so where one model is wrong the others usually outvote it."
    return (
        f"{base} That is below its best model ({percent(best)}): averaging lets the weaker model "
        f"({percent(worst)}) outvote the stronger one where it is confidently wrong. Models of about the same "
        "accuracy, with different mistakes, make the best ensembles."
    )


def curves_text(losses: Sequence[float], train_accuracy: float | None, test_accuracy: float | None, epochs: int) -> str:
    """The training curves: how the loss fell, and what train against test accuracy says."""
    if not losses:
        return ""
    text = (
        f"The loss measures how wrong the model is on the images it just saw: it went from {losses[0]:.2f} to "
        f"{losses[-1]:.2f}. It falls fast at first, then slowly, and jumps from batch to batch (the smoothed line "
        "shows the trend)."
    )
    if train_accuracy is None or test_accuracy is None:
        return text
    after = f"After {plural(epochs, 'epoch')}: {percent(train_accuracy)} right on the training images, " + (
        f"{percent(test_accuracy)} on the 10,000 test images it never trained on."
    )
    if train_accuracy - test_accuracy > OVERFIT_GAP:
        gap = " Training is well ahead of test: the model starts to learn its training images by heart (overfitting)."
    elif test_accuracy >= train_accuracy:
        gap = (
            " Test is as good or better: the training figure is an average over the whole epoch, counted while "
            "the model was still learning; the test is taken at the end."
        )
    else:
        gap = " The two are close: what it learned carries over to new images."
    return f"{text} {after}{gap}"


def learning_rate_text(scheduler: str, peak: float) -> str:
    """The learning-rate chart under a schedule (mnist.config.SCHEDULERS)."""
    how = {
        "none": "stays the same for the whole run",
        "step": "drops by a fixed factor every few epochs",
        "cosine": "glides down along a cosine curve to nearly 0",
        "onecycle": "climbs to its peak, then glides down to nearly 0",
    }.get(scheduler, "changes over the run")
    return (
        f"The learning rate is the size of each step the weights take (peak {peak:g}). Here it {how}: big steps "
        "learn fast early, small steps settle the weights at the end."
    )


def confusion_text(confusion: np.ndarray, epoch: int) -> str:
    """A confusion matrix (rows true digit, columns prediction): right ones, and the most common mix-up."""
    total, right = int(confusion.sum()), int(np.trace(confusion))
    text = (
        f"After epoch {epoch}: {right:,} of {total:,} test images right. Each row is the true digit, each column "
        "the model's answer: the diagonal holds the right answers, every other square a kind of mistake."
    )
    off = confusion.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    if off.sum() == 0:
        return text
    true, predicted = np.unravel_index(int(off.argmax()), off.shape)
    count = int(off[true, predicted])
    return f"{text} The most common mistake: {a_digit(true)} read as {a_digit(predicted)} ({plural(count, 'time')})."


def panel_text(right: int, total: int, epoch: int, epochs: int) -> str:
    """The fixed test digits under the training insight, after `epoch` of the `epochs` recorded so far."""
    watch = (
        " Move the epoch slider to watch the hard ones flip from ✗ to ✓ (or back) as the model learns."
        if epochs > 1
        else " With more epochs, a slider lets you watch the hard ones flip from ✗ to ✓ as the model learns."
    )
    return f"The same {total} test digits after every epoch: {right} read right after epoch {epoch}.{watch}"


# The Train form's fields, one plain paragraph each, shown in the field's help (the "?" beside it).
FIELD_TEXTS = {
    "arch": "The shape of the network: how many layers, how many filters in each. Bigger learns more but is slower.",
    "epochs": "One epoch shows the model every training image once. More epochs: more practice, more time.",
    "batch_size": "How many images the model looks at before each small change to its weights.",
    "optimizer": "The rule that turns the loss into weight changes. Adam adjusts its steps by itself; SGD is plainer.",
    "lr": "How big each change to the weights is. Too big and the loss jumps around; too small and it learns slowly.",
    "momentum": "Keeps some of the last step's direction, so the weights roll on through small bumps.",
    "weight_decay": "Pulls every weight a little towards 0, which keeps the model from relying on a few pixels.",
    "scheduler": "How the learning rate changes during the run: big steps early, small steps at the end work well.",
    "label_smoothing": "Teaches the model to keep a little probability on the other digits, so it is never 100% "
    "sure; it often helps on new images.",
    "ema": "Saves an average of the weights over the last steps instead of the last weights: smoother, often better.",
    "augment": "Shows each training image slightly turned, resized or moved, so the model copes with messy drawings.",
    "seed": "Fixes the random starting weights and shuffling: the same seed trains the same model again.",
    "train_limit": "Train on fewer images for a quick try; the test is always on all 10,000 test images.",
}


def field_text(name: str) -> str:
    """The plain-words paragraph of a Train form field; '' for a field without one."""
    return FIELD_TEXTS.get(name, "")
