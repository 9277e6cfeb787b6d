"""Why an uploaded checkpoint was refused, in plain words, with what to upload instead.

The library's CheckpointError messages are precise for the command line ("not a valid safetensors file
(Error while deserializing: header too large)"); a visitor on the Sketch page needs what was wrong and
what to do, never the internals of a file format. CheckpointError.kind picks the explanation here.
"""

from __future__ import annotations

from mnist.errors import CheckpointError, MnistError

INSTEAD = "Download a model from the Train page's Saved runs (Download model.safetensors), or train one there."
NOT_OURS = "This file is not a model.safetensors saved by MNIST Studio"
# {detail} is CheckpointError.detail: already plain words (a size, an architecture's name, a field).
REFUSALS = {
    CheckpointError.TOO_LARGE: "This file is too large to be an MNIST Studio model ({detail}; "
    "MNIST Studio's models are under 3 MB).",
    CheckpointError.PICKLE: "This file is a PyTorch pickle (a .pt or .pth file). Opening one can run any code "
    "hidden in it, so MNIST Studio never opens them: it reads only .safetensors files, which hold numbers only.",
    CheckpointError.NOT_SAFETENSORS: f"{NOT_OURS} (it could not be read as safetensors: it may be cut short, "
    "damaged, or another kind of file).",
    CheckpointError.NO_DESCRIPTION: "These weights carry no description of their model (its architecture and "
    "training settings). Add the meta.json from the same run folder in the second box, or upload the "
    "model.safetensors downloaded from the Train page, which carries its own.",
    CheckpointError.BAD_DESCRIPTION: "The description inside this file is damaged or was not written by MNIST "
    "Studio, so it cannot tell which model the weights belong to.",
    CheckpointError.BAD_JSON: "The .json is not a meta.json saved by MNIST Studio (or it is damaged). Upload the "
    "meta.json from the same run folder as the weights, or no .json: MNIST Studio's downloads do not need one.",
    CheckpointError.MISMATCH: "The .json belongs to another run than these weights: {detail}. Remove the .json "
    "(these weights carry their own description), or upload the meta.json from their own run folder.",
    CheckpointError.WRONG_TENSORS: "The weights in this file do not fit the architecture its description names "
    "({detail}): the file was changed after it was saved, or saved by another program.",
    CheckpointError.BAD_VALUES: "Some of this model's weights are not numbers (NaN or infinite), so it cannot "
    "predict anything: its training went wrong, or the file was damaged.",
}
GENERIC = f"{NOT_OURS}, or it is damaged."


def refusal_text(exc: MnistError) -> str:
    """What was wrong with an upload and what to upload instead, without the file format's internals."""
    kind = getattr(exc, "kind", CheckpointError.OTHER)
    detail = getattr(exc, "detail", "")
    text = REFUSALS.get(kind, GENERIC)
    if "{detail}" in text and not detail:
        text = GENERIC  # no plain detail to show: say less rather than show the precise message
    return f"{text.format(detail=detail)} {INSTEAD}"


def wrong_file_text(name: str) -> str:
    """A file whose name says it is not safetensors weights (the browser filters, a script may not)."""
    return f"{name} is not a .safetensors file: upload the model.safetensors itself. {INSTEAD}"
