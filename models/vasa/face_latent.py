"""VASA-style face latent model (stage 1): a face image <-> (3D appearance volume, identity, head pose, dynamics).

After VASA-1 section 3.1, which builds on MegaPortraits: independent encoders give an identity code z_id, a head
pose z_pose and a facial dynamics code z_dyn; the appearance volume V_app is a posed 3D feature volume warped
rigidly (inverse pose) and non-rigidly (a flow from z_dyn, z_id) into a canonical volume. The decoder warps the
canonical volume by a target pose and dynamics (the forward direction), projects it to 2D and renders the frame,
modulated by z_id and z_dyn (VASA-1: "a single decoder D takes these latents as input").

Pose: yaw, pitch, roll in radians (tanh-bounded by `max_angle_deg`), translation tx, ty in volume units
([-1, 1] spans the frame) and log-scale; 6 numbers. Images are RGB float [-1, 1], [B, 3, R, R].

Two extra heads that the paper does not have, both small: a learned identity embedder (the cross-identity loss
needs a face-identity network; ArcFace weights are not available here, so one is trained on the corpus's speaker
labels) and a landmark head mapping (z_id, z_pose, z_dyn) to 68 iBUG landmarks, trained on the corpus's landmarks
where known: it reads landmarks out of generated motion (gaze test, head-pose measurements) and gives the latents
a geometric anchor early in a short CPU training run.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

POSE_DIM = 6  # yaw, pitch, roll, tx, ty, log_scale
N_LANDMARKS = 68


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


def conv_trunk(in_ch: int, channels: int, n_down: int, max_channels: int) -> tuple[nn.Sequential, int]:
    """`n_down` >= 1 stride-2 4x4 convolutions (the first is the stem) doubling channels up to `max_channels`.

    Striding from the first layer keeps full-resolution convolutions out of every encoder (CPU cost).
    """
    layers: list[nn.Module] = [nn.Conv2d(in_ch, channels, 4, 2, 1), nn.GroupNorm(_groups(channels), channels)]
    layers.append(nn.SiLU())
    c = channels
    for _ in range(n_down - 1):
        c2 = min(2 * c, max_channels)
        layers += [nn.Conv2d(c, c2, 4, 2, 1), nn.GroupNorm(_groups(c2), c2), nn.SiLU()]
        c = c2
    return nn.Sequential(*layers), c


class GlobalEncoder(nn.Module):
    """Image [B,3,R,R] -> vector [B, out_dim]: conv trunk down to 4x4, then a linear layer."""

    def __init__(self, resolution: int, channels: int, max_channels: int, out_dim: int) -> None:
        super().__init__()
        n_down = int(round(math.log2(resolution / 4)))
        self.trunk, c = conv_trunk(3, channels, n_down, max_channels)
        self.head = nn.Linear(c * 16, out_dim)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(img).flatten(1))


class MotionEncoder(nn.Module):
    """Image -> (raw pose [B,6], z_dyn [B,Z]): one trunk, two heads, as MegaPortraits' single motion encoder."""

    def __init__(self, resolution: int, channels: int, max_channels: int, dyn_dim: int) -> None:
        super().__init__()
        n_down = int(round(math.log2(resolution / 4)))
        self.trunk, c = conv_trunk(3, channels, n_down, max_channels)
        self.pose_head = nn.Linear(c * 16, POSE_DIM)
        self.dyn_head = nn.Linear(c * 16, dyn_dim)
        nn.init.zeros_(self.pose_head.weight)  # start from the identity pose
        nn.init.zeros_(self.pose_head.bias)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(img).flatten(1)
        return self.pose_head(h), self.dyn_head(h)


class AppearanceEncoder(nn.Module):
    """Image -> posed appearance volume [B, C, D, R/s, R/s] (2D features lifted by a reshape, as MegaPortraits)."""

    def __init__(self, channels: int, max_channels: int, vol_channels: int, vol_depth: int, n_down: int) -> None:
        super().__init__()
        self.trunk, c = conv_trunk(3, channels, n_down, max_channels)
        self.lift = nn.Conv2d(c, vol_channels * vol_depth, 1)
        self.vol_channels, self.vol_depth = vol_channels, vol_depth
        self.refine = ResBlock3d(vol_channels)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        f = self.lift(self.trunk(img))
        b, _, h, w = f.shape
        return self.refine(f.view(b, self.vol_channels, self.vol_depth, h, w))


class ResBlock3d(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(channels), channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, 1, 1),
            nn.GroupNorm(_groups(channels), channels),
            nn.SiLU(),
            nn.Conv3d(channels, channels, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class WarpGenerator(nn.Module):
    """Code -> smooth 3D flow [B, D, h, w, 3] (grid units), starting at zero so training starts from rigid warps."""

    def __init__(self, code_dim: int, vol_depth: int, vol_size: int, channels: int = 16) -> None:
        super().__init__()
        self.coarse = (max(1, vol_depth // 2), max(1, vol_size // 2), max(1, vol_size // 2))
        self.size = (vol_depth, vol_size, vol_size)
        self.channels = channels
        self.fc = nn.Linear(code_dim, channels * math.prod(self.coarse))
        self.conv = nn.Sequential(nn.SiLU(), nn.Conv3d(channels, channels, 3, 1, 1), nn.SiLU())
        self.out = nn.Conv3d(channels, 3, 3, 1, 1)
        assert self.out.bias is not None  # Conv3d's default bias=True
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        # convolutions at the coarse size, then trilinear upsampling of the 3-channel flow: smooth and cheap
        x = self.fc(code).view(code.shape[0], self.channels, *self.coarse)
        flow = F.interpolate(self.out(self.conv(x)), size=self.size, mode="trilinear", align_corners=False)
        return flow.permute(0, 2, 3, 4, 1)


class ModulatedBlock(nn.Module):
    """Conv block whose GroupNorm is modulated (scale, shift) by a code: the decoder's use of z_id and z_dyn."""

    def __init__(self, cin: int, cout: int, code_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm = nn.GroupNorm(_groups(cout), cout, affine=False)
        self.mod = nn.Linear(code_dim, 2 * cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(x))
        scale, shift = self.mod(code)[:, :, None, None].chunk(2, dim=1)
        h = self.norm(h) * (1.0 + scale) + shift
        return self.skip(x) + self.conv2(F.silu(h))


class Decoder(nn.Module):
    """Posed volume [B,C,D,h,w] + code -> image [B,3,h*2^n_up,w*2^n_up] in [-1, 1].

    The code (z_id, z_dyn) enters twice: tiled as input channels beside the folded volume, so the first
    convolution can use it per position (a mouth opens in one place), and as GroupNorm modulation in each block.
    """

    def __init__(
        self, vol_channels: int, vol_depth: int, channels: int, code_dim: int, n_up: int, guide_channels: int = 0
    ) -> None:
        super().__init__()
        # depth is folded into channels straight away (2D convolutions are far cheaper than 3D on CPU)
        self.proj = nn.Conv2d(vol_channels * vol_depth + code_dim + guide_channels, 2 * channels, 3, 1, 1)
        # modulated blocks up to R/2; the full-resolution stage is one upsampling convolution (CPU cost)
        blocks = [ModulatedBlock(2 * channels, channels, code_dim)]
        blocks += [ModulatedBlock(channels, channels, code_dim) for _ in range(n_up - 1)]
        self.blocks = nn.ModuleList(blocks)
        self.up = nn.ConvTranspose2d(channels, channels, 4, 2, 1)
        self.out = nn.Conv2d(channels, 4, 3, 1, 1)  # RGB and the logit of the warped-image blending mask
        assert self.out.bias is not None  # Conv2d's default bias=True
        nn.init.constant_(self.out.bias[3:], 2.0)  # start mostly from the warped source image

    def forward(self, volume: torch.Tensor, code: torch.Tensor, guide: torch.Tensor | None = None) -> torch.Tensor:
        flat = volume.flatten(1, 2)
        tiled = code[:, :, None, None].expand(-1, -1, *flat.shape[2:])
        parts = [flat, tiled] if guide is None else [flat, tiled, guide]
        x = self.blocks[0](self.proj(torch.cat(parts, 1)), code)
        for block in self.blocks[1:]:
            x = block(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False), code)
        return self.out(F.silu(self.up(F.silu(x))))


# (upper, lower) landmark pairs whose gap is how open the mouth (inner lips) and each eye (eyelids) are
GUIDE_CHANNELS = {
    "mouth": ((61, 67), (62, 66), (63, 65)),
    "right_eye": ((37, 41), (38, 40)),
    "left_eye": ((43, 47), (44, 46)),
}


def landmark_guide_maps(landmarks: torch.Tensor, size: int, sigma_px: float = 1.0) -> torch.Tensor:
    """Openness maps [B, 3, size, size] from normalised landmarks [B, 68, 2]: per channel (mouth, eyes), Gaussians
    at the midpoints of upper/lower pairs with amplitude = the pair's gap in grid cells (0 when closed).

    Used only with `landmark_guide=True` (not in VASA-1): the decoder then sees where the mouth and eyes open, which
    it otherwise has to learn from global codes; the landmarks come from (z_id, pose, dyn) through the landmark
    head, so decoding still depends only on the latents.
    """
    coords = torch.linspace(-1, 1, size, device=landmarks.device)
    cell = 2.0 / max(size - 1, 1)
    maps = []
    for pairs in GUIDE_CHANNELS.values():
        up = landmarks[:, [a for a, _ in pairs]]
        lo = landmarks[:, [b for _, b in pairs]]
        mid, gap = (up + lo) / 2.0, (lo[..., 1] - up[..., 1]).clamp(min=0.0) / cell  # [B, P, 2], [B, P]
        dx = (coords[None, None, :] - mid[..., 0:1]) / (sigma_px * cell)  # [B, P, W]
        dy = (coords[None, None, :] - mid[..., 1:2]) / (sigma_px * cell)  # [B, P, H]
        g = torch.exp(-0.5 * (dy[..., :, None] ** 2 + dx[..., None, :] ** 2))  # [B, P, H, W]
        maps.append((gap[..., None, None] * g).sum(1))
    return torch.stack(maps, 1)


def rotation_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """[B] angles (radians) -> [B,3,3] R = Rz(roll) Ry(yaw) Rx(pitch), acting on (x, y, z) column vectors."""
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], -1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], -1).view(-1, 3, 3)
    return rz @ ry @ rx


@dataclass
class FaceLatents:
    """One image's factors: canonical volume [B,C,D,h,w], z_id [B,I], pose [B,6], z_dyn [B,Z]; and for the
    image path, the source image [B,3,R,R] and its canonicalisation grid [B,D,h,w,3] (source point per voxel)."""

    volume: torch.Tensor
    z_id: torch.Tensor
    pose: torch.Tensor
    dyn: torch.Tensor
    image: torch.Tensor
    grid: torch.Tensor

    def select(self, index: slice | torch.Tensor) -> FaceLatents:
        return FaceLatents(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))

    def motion(self) -> torch.Tensor:
        """The motion latent VASA's generator models: [pose, dyn], [B, 6 + Z]."""
        return torch.cat([self.pose, self.dyn], dim=-1)


class FaceLatentNet(nn.Module):
    """Encoders, warps, decoder and the two auxiliary heads (see the module docstring)."""

    base_grid: torch.Tensor  # buffer [D, h, w, 3]: the volume's voxel coordinates

    def __init__(
        self,
        resolution: int = 64,
        channels: int = 16,
        max_channels: int = 128,
        vol_channels: int = 8,
        vol_depth: int = 4,
        id_dim: int = 32,
        dyn_dim: int = 16,
        embed_dim: int = 64,
        max_angle_deg: float = 30.0,
        vol_stride: int = 4,
        landmark_guide: bool = False,
    ) -> None:
        super().__init__()
        if resolution < 16 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two >= 16, got {resolution}")
        if vol_stride not in (2, 4, 8):
            raise ValueError(f"vol_stride must be 2, 4 or 8, got {vol_stride}")
        self.resolution, self.id_dim, self.dyn_dim = resolution, id_dim, dyn_dim
        self.max_angle = math.radians(max_angle_deg)
        vol_size = resolution // vol_stride
        n_down = int(round(math.log2(vol_stride)))
        self.appearance = AppearanceEncoder(channels, max_channels, vol_channels, vol_depth, n_down)
        self.identity = GlobalEncoder(resolution, channels, max_channels, id_dim)
        self.motion = MotionEncoder(resolution, channels, max_channels, dyn_dim)
        # w_{s->c} (source to canonical) and w_{c->d} (canonical to driving), MegaPortraits' two warp generators
        self.warp_to_canonical = WarpGenerator(id_dim + dyn_dim, vol_depth, vol_size)
        self.warp_from_canonical = WarpGenerator(id_dim + dyn_dim, vol_depth, vol_size)
        self.landmark_guide = landmark_guide
        guide = len(GUIDE_CHANNELS) if landmark_guide else 0
        self.decoder = Decoder(vol_channels, vol_depth, channels, id_dim + dyn_dim, n_down, guide)
        self.id_embedder = GlobalEncoder(resolution, channels, max_channels, embed_dim)
        self.landmark_head = nn.Sequential(
            nn.Linear(id_dim + POSE_DIM + dyn_dim, 256), nn.SiLU(), nn.Linear(256, 2 * N_LANDMARKS)
        )
        grid = torch.stack(
            torch.meshgrid(
                torch.linspace(-1, 1, vol_depth),
                torch.linspace(-1, 1, vol_size),
                torch.linspace(-1, 1, vol_size),
                indexing="ij",
            )[::-1],
            dim=-1,
        )  # [D, h, w, 3] as (x, y, z), grid_sample's order
        self.register_buffer("base_grid", grid, persistent=False)

    # ----- factors -------------------------------------------------------------------------------------------
    def motion_of(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pose [B,6], z_dyn [B,Z]) of images."""
        raw, dyn = self.motion(img)
        return self._bound_pose(raw), dyn

    def _bound_pose(self, raw: torch.Tensor) -> torch.Tensor:
        angles = self.max_angle * torch.tanh(raw[:, :3])
        trans = 0.5 * torch.tanh(raw[:, 3:5])
        log_scale = 0.2 * torch.tanh(raw[:, 5:6])
        return torch.cat([angles, trans, log_scale], dim=1)

    def _rigid(self, pose: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rot = rotation_matrix(pose[:, 0], pose[:, 1], pose[:, 2])
        trans = torch.cat([pose[:, 3:5], torch.zeros_like(pose[:, :1])], dim=1)
        return rot, trans, pose[:, 5].exp()

    def canonical_grid(self, z_id: torch.Tensor, pose: torch.Tensor, dyn: torch.Tensor) -> torch.Tensor:
        """For each canonical voxel p, its source point s R p + t + w_{s->c}(p): [B, D, h, w, 3]."""
        rot, trans, scale = self._rigid(pose)
        p = self.base_grid.unsqueeze(0).expand(len(pose), -1, -1, -1, -1)
        grid = scale[:, None, None, None, None] * torch.einsum("bij,bdhwj->bdhwi", rot, p)
        return grid + trans[:, None, None, None] + self.warp_to_canonical(torch.cat([z_id, dyn], 1))

    def driving_grid(self, z_id: torch.Tensor, pose: torch.Tensor, dyn: torch.Tensor) -> torch.Tensor:
        """For each driven voxel p, its canonical point R^T (p - t) / s + w_{c->d}(p): [B, D, h, w, 3]."""
        rot, trans, scale = self._rigid(pose)
        p = self.base_grid.unsqueeze(0) - trans[:, None, None, None]
        grid = torch.einsum("bji,bdhwj->bdhwi", rot, p) / scale[:, None, None, None, None]
        return grid + self.warp_from_canonical(torch.cat([z_id, dyn], 1))

    def canonicalize(self, posed: torch.Tensor, z_id: torch.Tensor, pose: torch.Tensor, dyn: torch.Tensor):
        """V_can(p) = V_posed(s R p + t + w_{s->c}(p)): undo the source's pose and expression."""
        grid = self.canonical_grid(z_id, pose, dyn)
        return F.grid_sample(posed, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def pose_volume(self, volume: torch.Tensor, z_id: torch.Tensor, pose: torch.Tensor, dyn: torch.Tensor):
        """V_d(p) = V_can(R^T (p - t) / s + w_{c->d}(p)): the canonical volume under a target pose and expression."""
        grid = self.driving_grid(z_id, pose, dyn)
        return F.grid_sample(volume, grid, mode="bilinear", padding_mode="border", align_corners=True)

    def encode(self, img: torch.Tensor) -> FaceLatents:
        z_id, (pose, dyn) = self.identity(img), self.motion_of(img)
        grid = self.canonical_grid(z_id, pose, dyn)
        volume = F.grid_sample(self.appearance(img), grid, mode="bilinear", padding_mode="border", align_corners=True)
        return FaceLatents(volume, z_id, pose, dyn, img, grid)

    def encode_motion(self, img: torch.Tensor) -> torch.Tensor:
        """Only [pose, dyn] of each image (what the motion generator trains on), [B, 6 + Z]."""
        return torch.cat(self.motion_of(img), dim=1)

    def decode(
        self,
        source: FaceLatents,
        pose: torch.Tensor,
        dyn: torch.Tensor,
    ) -> torch.Tensor:
        """D(V_app, z_id, z_pose, z_dyn) of the source's appearance -> image [B, 3, R, R] in [-1, 1].

        The rendered volume is blended (a predicted mask) with the source image warped by the same motion: the
        3D sampling grids composed (driven voxel -> canonical -> source point) and averaged over depth give a 2D
        flow. This occlusion-aware image path is face-vid2vid's (Wang et al. 2021), not VASA-1's: it keeps an
        unseen identity's appearance from the first training steps, which a CPU budget needs; the decoder learns
        what warping cannot show (an opening mouth's inside, closed eyelids).
        """
        drv = self.driving_grid(source.z_id, pose, dyn)
        posed = F.grid_sample(source.volume, drv, mode="bilinear", padding_mode="border", align_corners=True)
        guide = None
        if self.landmark_guide:
            guide = landmark_guide_maps(self.landmarks(source.z_id, pose, dyn), posed.shape[-1])
        out = self.decoder(posed, torch.cat([source.z_id, dyn], 1), guide)
        rgb, mask = torch.tanh(out[:, :3]), torch.sigmoid(out[:, 3:4])
        src_pts = F.grid_sample(
            source.grid.permute(0, 4, 1, 2, 3), drv, mode="bilinear", padding_mode="border", align_corners=True
        )  # [B, 3, D, h, w]: source point of each driven voxel
        flow = F.interpolate(src_pts[:, :2].mean(2), size=rgb.shape[-2:], mode="bilinear", align_corners=True)
        warped = F.grid_sample(
            source.image, flow.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=True
        )
        return mask * warped + (1.0 - mask) * rgb

    def embed_identity(self, img: torch.Tensor, params: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """L2-normalised identity embedding; `params` evaluates it with given (e.g. detached) weights."""
        if params is None:
            e = self.id_embedder(img)
        else:
            e = torch.func.functional_call(self.id_embedder, params, (img,))
        return F.normalize(e, dim=-1)

    def landmarks(self, z_id: torch.Tensor, pose: torch.Tensor, dyn: torch.Tensor) -> torch.Tensor:
        """68 landmarks [..., 68, 2] in normalised frame coordinates ([-1, 1] spans the frame)."""
        out = self.landmark_head(torch.cat([z_id, pose, dyn], dim=-1))
        return out.view(*out.shape[:-1], N_LANDMARKS, 2)
