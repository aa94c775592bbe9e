"""The generative model learns each coupled channel's glitch family: trained on the glitches the veto
published from seeded frames, the glitches it draws for a channel have their power near where that channel's
real glitches do (spectral centroid within 35 %: the draws are decoder means, without the real glitches'
noise), in the order of the families the simulator planted, which no single unconditional shape could."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from test_veto import joined
from virgo_glitch.channels import COUPLED
from virgo_glitch.functions import veto
from virgo_glitch.model import centroid, glitch_shapes
from virgo_glitch.simulator import FAMILIES, frames

torch = pytest.importorskip("torch")


class _Ctx:
    parameters: dict[str, Any] = {}
    state = None

    def __init__(self) -> None:
        self.published: dict[str, list[dict[str, Any]]] = {}

    def publish(self, stream: str, records: list[dict[str, Any]]) -> None:
        self.published.setdefault(stream, []).extend(records)

    def update_state(self, **values: Any) -> None:
        pass


def test_generated_glitches_belong_to_their_channels_family() -> None:
    from twinengine.app import TrainingData
    from twinengine.ml.flavours import PyTorchFlavour

    ctx = _Ctx()
    veto(ctx, joined(list(frames(240, seed=5, glitch_rate=0.5))))
    glitches = ctx.published["glitches"]
    assert len(glitches) >= 80
    task = glitch_shapes()
    result = PyTorchFlavour().fit(task, task.config, TrainingData(records=glitches))
    assert result.final["centroid_error"] < 0.25, result.final
    real = {c: float(np.median(centroid(np.stack([g["shape"] for g in glitches if g["channel"] == c]))))
            for c in COUPLED}
    drawn = {c: float(np.median(centroid(np.array(task.predict(result.model, {"channel": c, "n": 200, "seed": 1})))))
             for c in COUPLED}
    for channel in COUPLED:  # each channel's draws sit near its real glitches (smoother: without their noise)
        assert abs(drawn[channel] - real[channel]) < 0.35 * real[channel], (channel, drawn, real)
    # and in the order of the families the simulator planted (slow scattered light ... fast intensity noise)
    by_family = sorted(COUPLED, key=lambda c: FAMILIES[c][0])
    assert sorted(COUPLED, key=drawn.__getitem__) == by_family, drawn
    with pytest.raises(ValueError, match="not a coupled channel"):
        task.predict(result.model, {"channel": "mic"})
