"""Fixtures shared by the model tests: a stand-in for the official SDA audio encoder file."""

from pathlib import Path

import pytest
import torch


class FakeSDA(torch.nn.Module):
    """The official SDA encoder's call signature (docs/diffused_heads.md); its 256-d output spells out how
    it was called: [first sample, last sample, window sum, incoming hidden[0, 0, 0], lengths[0], window length,
    every 16th sample x 3 ...], and the hidden state it returns is the incoming one + 1, so row k of a clip's
    embeddings holds k when the state is threaded from window to window."""

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, init_state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        emb = torch.zeros(1, 256, device=x.device)
        emb[0, 0] = x[0, 0, 0]
        emb[0, 1] = x[0, 0, -1]
        emb[0, 2] = x.sum()
        emb[0, 3] = init_state[0, 0, 0]
        emb[0, 4] = lengths[0].to(torch.float32)
        emb[0, 5] = float(x.shape[-1])
        emb[0, 6:206] = x[0, 0, ::16] * 3.0
        return emb, torch.zeros(1, device=x.device), init_state + 1.0


@pytest.fixture(scope="session")
def sda_encoder_file(tmp_path_factory) -> str:
    """A TorchScript file with the official SDA call contract (an `audio_encoder.pt` stand-in)."""
    path = Path(tmp_path_factory.mktemp("sda")) / "audio_encoder.pt"
    torch.jit.script(FakeSDA()).save(str(path))
    return str(path)
