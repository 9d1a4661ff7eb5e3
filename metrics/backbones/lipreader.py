"""Word-level lipreader: 3-D conv front end + ResNet-18 trunk + MS-TCN back end (Martinez et al., ICASSP 2020).

Layout and key names follow mpc001/Lipreading_using_Temporal_Convolutional_Networks (`lipreading/model.py`,
`models/resnet.py`, `models/tcn.py`, HEAD 0cc99fa) so the official LRW checkpoints load strictly: the state dict of
`Lipreader(PRESETS["lrw_resnet18_mstcn"])` equals tests/data_files/lrw_lipreader_resnet18_mstcn_state_dict.tsv (the
current `resnet18_mstcn_video` file, swish activations) and the `_prelu` preset equals the table of the older
checkpoints (PReLU, config before commit b98500c). The DC-TCN back end is not built here (`backend="mstcn"` only).

Input: float (B, 1, T, 88, 88) grey mouth crops normalised with mean 0.421 / std 0.165
(`metrics.functional.mouth`), `lengths` the valid frames per clip; output (B, num_classes) logits (no softmax),
class i = line i of the label list (`LRW_500_WORDS` for LRW; docs/checkpoints.md). The `small` preset is the same family
at a width that trains on a CPU in minutes (`bench calibrate --what lipreader` on the synthetic vocabulary).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from pathlib import Path

ACTIVATIONS = ("swish", "prelu", "relu")
BACKENDS = ("mstcn",)
CROP_SIZE = 88  # mpc001 test transform: centre crop 88x88 of the 96x96 mouth ROI


# mpc001 labels/500WordsSortedList.txt (sha256 be120610..., docs/checkpoints.md): class i = word i
LRW_500_WORDS: tuple[str, ...] = tuple(
    (
        "ABOUT ABSOLUTELY ABUSE ACCESS ACCORDING ACCUSED ACROSS ACTION ACTUALLY AFFAIRS AFFECTED AFRICA AFTER "
        "AFTERNOON AGAIN AGAINST AGREE AGREEMENT AHEAD ALLEGATIONS ALLOW ALLOWED ALMOST ALREADY ALWAYS "
        "AMERICA AMERICAN AMONG AMOUNT ANNOUNCED ANOTHER ANSWER ANYTHING AREAS AROUND ARRESTED ASKED ASKING "
        "ATTACK ATTACKS AUTHORITIES BANKS BECAUSE BECOME BEFORE BEHIND BEING BELIEVE BENEFIT BENEFITS BETTER "
        "BETWEEN BIGGEST BILLION BLACK BORDER BRING BRITAIN BRITISH BROUGHT BUDGET BUILD BUILDING BUSINESS "
        "BUSINESSES CALLED CAMERON CAMPAIGN CANCER CANNOT CAPITAL CASES CENTRAL CERTAINLY CHALLENGE CHANCE "
        "CHANGE CHANGES CHARGE CHARGES CHIEF CHILD CHILDREN CHINA CLAIMS CLEAR CLOSE CLOUD COMES COMING "
        "COMMUNITY COMPANIES COMPANY CONCERNS CONFERENCE CONFLICT CONSERVATIVE CONTINUE CONTROL COULD COUNCIL "
        "COUNTRIES COUNTRY COUPLE COURSE COURT CRIME CRISIS CURRENT CUSTOMERS DAVID DEATH DEBATE DECIDED "
        "DECISION DEFICIT DEGREES DESCRIBED DESPITE DETAILS DIFFERENCE DIFFERENT DIFFICULT DOING DURING EARLY "
        "EASTERN ECONOMIC ECONOMY EDITOR EDUCATION ELECTION EMERGENCY ENERGY ENGLAND ENOUGH EUROPE EUROPEAN "
        "EVENING EVENTS EVERY EVERYBODY EVERYONE EVERYTHING EVIDENCE EXACTLY EXAMPLE EXPECT EXPECTED EXTRA "
        "FACING FAMILIES FAMILY FIGHT FIGHTING FIGURES FINAL FINANCIAL FIRST FOCUS FOLLOWING FOOTBALL FORCE "
        "FORCES FOREIGN FORMER FORWARD FOUND FRANCE FRENCH FRIDAY FRONT FURTHER FUTURE GAMES GENERAL GEORGE "
        "GERMANY GETTING GIVEN GIVING GLOBAL GOING GOVERNMENT GREAT GREECE GROUND GROUP GROWING GROWTH GUILTY "
        "HAPPEN HAPPENED HAPPENING HAVING HEALTH HEARD HEART HEAVY HIGHER HISTORY HOMES HOSPITAL HOURS HOUSE "
        "HOUSING HUMAN HUNDREDS IMMIGRATION IMPACT IMPORTANT INCREASE INDEPENDENT INDUSTRY INFLATION "
        "INFORMATION INQUIRY INSIDE INTEREST INVESTMENT INVOLVED IRELAND ISLAMIC ISSUE ISSUES ITSELF JAMES "
        "JUDGE JUSTICE KILLED KNOWN LABOUR LARGE LATER LATEST LEADER LEADERS LEADERSHIP LEAST LEAVE LEGAL "
        "LEVEL LEVELS LIKELY LITTLE LIVES LIVING LOCAL LONDON LONGER LOOKING MAJOR MAJORITY MAKES MAKING "
        "MANCHESTER MARKET MASSIVE MATTER MAYBE MEANS MEASURES MEDIA MEDICAL MEETING MEMBER MEMBERS MESSAGE "
        "MIDDLE MIGHT MIGRANTS MILITARY MILLION MILLIONS MINISTER MINISTERS MINUTES MISSING MOMENT MONEY "
        "MONTH MONTHS MORNING MOVING MURDER NATIONAL NEEDS NEVER NIGHT NORTH NORTHERN NOTHING NUMBER NUMBERS "
        "OBAMA OFFICE OFFICERS OFFICIALS OFTEN OPERATION OPPOSITION ORDER OTHER OTHERS OUTSIDE PARENTS "
        "PARLIAMENT PARTIES PARTS PARTY PATIENTS PAYING PEOPLE PERHAPS PERIOD PERSON PERSONAL PHONE PLACE "
        "PLACES PLANS POINT POLICE POLICY POLITICAL POLITICIANS POLITICS POSITION POSSIBLE POTENTIAL POWER "
        "POWERS PRESIDENT PRESS PRESSURE PRETTY PRICE PRICES PRIME PRISON PRIVATE PROBABLY PROBLEM PROBLEMS "
        "PROCESS PROTECT PROVIDE PUBLIC QUESTION QUESTIONS QUITE RATES RATHER REALLY REASON RECENT RECORD "
        "REFERENDUM REMEMBER REPORT REPORTS RESPONSE RESULT RETURN RIGHT RIGHTS RULES RUNNING RUSSIA RUSSIAN "
        "SAYING SCHOOL SCHOOLS SCOTLAND SCOTTISH SECOND SECRETARY SECTOR SECURITY SEEMS SENIOR SENSE SERIES "
        "SERIOUS SERVICE SERVICES SEVEN SEVERAL SHORT SHOULD SIDES SIGNIFICANT SIMPLY SINCE SINGLE SITUATION "
        "SMALL SOCIAL SOCIETY SOMEONE SOMETHING SOUTH SOUTHERN SPEAKING SPECIAL SPEECH SPEND SPENDING SPENT "
        "STAFF STAGE STAND START STARTED STATE STATEMENT STATES STILL STORY STREET STRONG SUNDAY SUNSHINE "
        "SUPPORT SYRIA SYRIAN SYSTEM TAKEN TAKING TALKING TALKS TEMPERATURES TERMS THEIR THEMSELVES THERE "
        "THESE THING THINGS THINK THIRD THOSE THOUGHT THOUSANDS THREAT THREE THROUGH TIMES TODAY TOGETHER "
        "TOMORROW TONIGHT TOWARDS TRADE TRIAL TRUST TRYING UNDER UNDERSTAND UNION UNITED UNTIL USING VICTIMS "
        "VIOLENCE VOTERS WAITING WALES WANTED WANTS WARNING WATCHING WATER WEAPONS WEATHER WEEKEND WEEKS "
        "WELCOME WELFARE WESTERN WESTMINSTER WHERE WHETHER WHICH WHILE WHOLE WINDS WITHIN WITHOUT WOMEN WORDS "
        "WORKERS WORKING WORLD WORST WOULD WRONG YEARS YESTERDAY YOUNG "
    ).split()
)


@dataclass(frozen=True)
class LipreaderConfig:
    """Hyper-parameters of one member of the family (defaults: mpc001 `configs/lrw_resnet18_mstcn.json`)."""

    num_classes: int = 500
    relu_type: str = "swish"
    backend: str = "mstcn"
    frontend_channels: int = 64
    trunk_widths: tuple[int, ...] = (64, 128, 256, 512)
    trunk_blocks: tuple[int, ...] = (2, 2, 2, 2)
    tcn_channels: int = 768  # per level, split evenly over the kernel branches
    tcn_levels: int = 4
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    dropout: float = 0.2
    crop_size: int = CROP_SIZE  # side of the square grey mouth crop the network takes
    # standardise each clip's crops (mean 0, std 1 over its frames and pixels) before the front end: removes a
    # speaker's skin / lighting level, which a small net trained on few speakers otherwise latches onto. Off for
    # the mpc001 networks (their input is the fixed 0.421 / 0.165 normalisation only).
    clip_norm: bool = False
    labels: tuple[str, ...] = field(default=())  # class names in index order, when known

    def __post_init__(self) -> None:
        if self.relu_type not in ACTIVATIONS:
            raise ValueError(f"relu_type must be one of {ACTIVATIONS}, got {self.relu_type!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r} (DC-TCN is not implemented)")
        if len(self.trunk_widths) != len(self.trunk_blocks) or not self.trunk_widths:
            raise ValueError("trunk_widths and trunk_blocks must be non-empty and of equal length")
        if self.tcn_channels % len(self.kernel_sizes):
            raise ValueError(f"tcn_channels {self.tcn_channels} must divide by the {len(self.kernel_sizes)} branches")
        if self.labels and len(self.labels) != self.num_classes:
            raise ValueError(f"{len(self.labels)} labels for {self.num_classes} classes")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LipreaderConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown lipreader config keys {unknown}; known: {sorted(names)}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


PRESETS: dict[str, LipreaderConfig] = {
    # mpc001 resnet18_mstcn_video (88.9 % on LRW), configs/lrw_resnet18_mstcn.json at HEAD
    "lrw_resnet18_mstcn": LipreaderConfig(),
    # the older resnet18_mstcn / resnet18_mstcn(adamw_s3) files: same config with PReLU (before commit b98500c)
    "lrw_resnet18_mstcn_prelu": LipreaderConfig(relu_type="prelu"),
    # CPU-sized member of the family for calibration on a corpus's own vocabulary
    "small": LipreaderConfig(
        num_classes=20,
        frontend_channels=16,
        trunk_widths=(16, 32, 64, 96),
        trunk_blocks=(1, 1, 1, 1),
        tcn_channels=96,
        tcn_levels=2,
        dropout=0.1,
        # ReLU: Swish's extra multiplies cost ~20 % of a CPU training step; with ReLU calibration meets its acceptance
        relu_type="relu",
        # a 35 px ROI / 32 px crop of the 128 px synthetic faces still resolves the lip gap of a half-open vowel
        # (~4 px) with 7.5x fewer pixels than the reference 88 px (a CPU step: 0.23 s vs 0.43 s at 44 px, batch 16)
        crop_size=32,
        clip_norm=True,
    ),
}


class Swish(nn.Module):
    """x * sigmoid(x), as mpc001's `Swish` (no parameters, so no state-dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def _act(relu_type: str, channels: int) -> nn.Module:
    if relu_type == "prelu":
        return nn.PReLU(num_parameters=channels)
    return Swish() if relu_type == "swish" else nn.ReLU(inplace=True)


class BasicBlock(nn.Module):
    """ResNet basic block; attribute order (conv1, bn1, relu1, relu2, conv2, bn2, downsample) as mpc001's."""

    def __init__(self, inplanes: int, planes: int, stride: int, downsample: nn.Module | None, relu_type: str):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = _act(relu_type, planes)
        self.relu2 = _act(relu_type, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        y: torch.Tensor = self.relu2(out + residual)
        return y


class ResNetTrunk(nn.Module):
    """mpc001's ResNet without stem or fc: layer1..layerN, global average pool -> (N, widths[-1])."""

    def __init__(self, inplanes: int, widths: Sequence[int], blocks: Sequence[int], relu_type: str):
        super().__init__()
        for i, (planes, n) in enumerate(zip(widths, blocks), start=1):
            stride = 1 if i == 1 else 2
            layers = []
            for b in range(n):
                s = stride if b == 0 else 1
                down = None
                if s != 1 or inplanes != planes:
                    # mpc001 `downsample_basic_block`: 1x1 strided conv + BN
                    down = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=s, bias=False), nn.BatchNorm2d(planes))
                layers.append(BasicBlock(inplanes, planes, s, down, relu_type))
                inplanes = planes
            setattr(self, f"layer{i}", nn.Sequential(*layers))
        self.n_layers = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.n_layers + 1):
            x = getattr(self, f"layer{i}")(x)
        pooled: torch.Tensor = self.avgpool(x)
        return pooled.flatten(1)


class ConvBatchChompRelu(nn.Module):
    """Conv1d (symmetric padding) + BN + symmetric chomp + activation: one branch of a multi-scale block."""

    def __init__(self, n_in: int, n_out: int, kernel: int, dilation: int, relu_type: str):
        super().__init__()
        self.padding = (kernel - 1) * dilation
        self.conv = nn.Conv1d(n_in, n_out, kernel, padding=self.padding, dilation=dilation)
        self.batchnorm = nn.BatchNorm1d(n_out)
        self.non_lin = _act(relu_type, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.batchnorm(self.conv(x))
        # mpc001 Chomp1d(symm_chomp=True): padding on both sides then half of it cut from each end keeps length T
        half = self.padding // 2
        if half:
            out = out[:, :, half:-half]
        y: torch.Tensor = self.non_lin(out)
        return y


class MultibranchTemporalBlock(nn.Module):
    def __init__(
        self, n_in: int, n_out: int, kernels: Sequence[int], dilation: int, dropout: float, relu_type: str
    ) -> None:
        super().__init__()
        self.num_kernels = len(kernels)
        branch = n_out // self.num_kernels
        for k, size in enumerate(kernels):
            setattr(self, f"cbcr0_{k}", ConvBatchChompRelu(n_in, branch, size, dilation, relu_type))
        self.dropout0 = nn.Dropout(dropout)
        for k, size in enumerate(kernels):
            setattr(self, f"cbcr1_{k}", ConvBatchChompRelu(n_out, branch, size, dilation, relu_type))
        self.dropout1 = nn.Dropout(dropout)
        # mpc001 compares n_inputs // num_kernels with n_outputs, so the 1x1 projection exists in every block
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in // self.num_kernels != n_out else None
        self.relu_final = _act(relu_type, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([getattr(self, f"cbcr0_{k}")(x) for k in range(self.num_kernels)], 1)
        out = self.dropout0(out)
        out = torch.cat([getattr(self, f"cbcr1_{k}")(out) for k in range(self.num_kernels)], 1)
        out = self.dropout1(out)
        res = x if self.downsample is None else self.downsample(x)
        y: torch.Tensor = self.relu_final(out + res)
        return y


class MultibranchTemporalConvNet(nn.Module):
    def __init__(self, n_in: int, cfg: LipreaderConfig) -> None:
        super().__init__()
        layers = []
        for i in range(cfg.tcn_levels):
            c_in = n_in if i == 0 else cfg.tcn_channels
            layers.append(
                MultibranchTemporalBlock(c_in, cfg.tcn_channels, cfg.kernel_sizes, 2**i, cfg.dropout, cfg.relu_type)
            )
        self.network = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.network(x)
        return y


class MultiscaleMultibranchTCN(nn.Module):
    """MS-TCN over (B, T, C) features, averaged over each clip's valid frames, then the word classifier."""

    def __init__(self, n_in: int, cfg: LipreaderConfig) -> None:
        super().__init__()
        self.mb_ms_tcn = MultibranchTemporalConvNet(n_in, cfg)
        self.tcn_output = nn.Linear(cfg.tcn_channels, cfg.num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out = self.mb_ms_tcn(x.transpose(1, 2))  # (B, C, T)
        # mpc001 `_average_batch`: mean over the first lengths[i] steps of each clip (batches are zero-padded)
        t = torch.arange(out.shape[2], device=out.device)
        mask = (t[None, :] < lengths[:, None]).to(out.dtype)
        pooled = (out * mask[:, None, :]).sum(2) / lengths[:, None].clamp(min=1).to(out.dtype)
        logits: torch.Tensor = self.tcn_output(pooled)
        return logits


class Lipreader(nn.Module):
    """The mpc001 `Lipreading` network (video modality): frontend3D -> trunk -> tcn (see module docstring)."""

    def __init__(self, cfg: LipreaderConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or LipreaderConfig()
        self.cfg = cfg
        # registration order trunk, frontend3D, tcn is mpc001's (the reference tables list keys in that order)
        self.trunk = ResNetTrunk(cfg.frontend_channels, cfg.trunk_widths, cfg.trunk_blocks, cfg.relu_type)
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, cfg.frontend_channels, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(cfg.frontend_channels),
            _act(cfg.relu_type, cfg.frontend_channels),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        )
        self.tcn = MultiscaleMultibranchTCN(cfg.trunk_widths[-1], cfg)
        self._init_weights()
        #: what results record about this network (arch + kwargs), as for the other evaluators
        self.evaluator_config = {"arch": "lipreader", "kwargs": cfg.to_dict()}

    def _init_weights(self) -> None:
        # mpc001 `_initialize_weights_randomly` (He-normal on fan-out, unit BN): what `bench calibrate` starts from
        for m in self.modules():
            if isinstance(m, nn.Conv3d | nn.Conv2d | nn.Conv1d):
                n = math.prod(m.kernel_size) * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm3d | nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.in_features))
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) normalised crops -> (B, T, C) per-frame trunk features (mpc001 `extract_feats`)."""
        if x.ndim != 5 or x.shape[1] != 1:
            raise ValueError(f"lipreader input must be (B, 1, T, H, W) grey crops, got {tuple(x.shape)}")
        conv, bn, act, pool = self.frontend3D
        x = act(bn(conv(x)))
        b, c, t, h, w = x.shape
        # the (1, 3, 3) MaxPool3d pools each frame on its own: done as 2-D pooling of the frames it gives the same
        # numbers several times faster on a CPU (no fast max_pool3d kernel there); the module stays for the layout
        x = x.transpose(1, 2).reshape(b * t, c, h, w)
        assert isinstance(pool, nn.MaxPool3d)
        # built in __init__ with 3-tuples (torch types each as an int or a 3-tuple)
        kernel, stride, padding = cast(tuple[tuple[int, ...], ...], (pool.kernel_size, pool.stride, pool.padding))
        x = F.max_pool2d(x, kernel[1:], stride[1:], padding[1:])
        feats: torch.Tensor = self.trunk(x)
        return feats.view(b, t, -1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | Sequence[int] | None = None) -> torch.Tensor:
        """Word logits (B, num_classes); `lengths` = valid frames per clip (default: all T)."""
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[2], dtype=torch.long, device=x.device)
        lengths = torch.as_tensor(lengths, device=x.device)
        if self.cfg.clip_norm and x.ndim == 5:
            valid = (torch.arange(x.shape[2], device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
            mask = valid[:, None, :, None, None].expand_as(x)
            n = mask.sum((1, 2, 3, 4), keepdim=True).clamp(min=1)
            mean = (x * mask).sum((1, 2, 3, 4), keepdim=True) / n
            std = (((x - mean) * mask) ** 2).sum((1, 2, 3, 4), keepdim=True).div(n).sqrt().clamp(min=1e-3)
            x = (x - mean) / std * mask
        logits: torch.Tensor = self.tcn(self.features(x), lengths)
        return logits


def build_lipreader(preset: str = "lrw_resnet18_mstcn", **overrides: Any) -> Lipreader:
    """A randomly initialised lipreader of `preset` (see PRESETS), with config fields overridden."""
    if preset not in PRESETS:
        raise KeyError(f"unknown lipreader preset {preset!r}; known: {', '.join(PRESETS)}")
    base = PRESETS[preset].to_dict()
    base.update(overrides)
    return Lipreader(LipreaderConfig.from_dict(base))


def lipreader_from_config(config: dict[str, Any]) -> Lipreader:
    """Rebuild a lipreader from its `evaluator_config` (as saved beside calibrated weights)."""
    if config.get("arch") != "lipreader":
        raise ValueError(f"not a lipreader config: arch {config.get('arch')!r}")
    return Lipreader(LipreaderConfig.from_dict(dict(config.get("kwargs", {}))))


def load_lrw_labels(path: str | Path) -> tuple[str, ...]:
    """The LRW label list (one upper-case word per line, class i = line i), e.g. mpc001 500WordsSortedList.txt."""
    from pathlib import Path

    words = tuple(w.strip() for w in Path(path).read_text().splitlines() if w.strip())
    if not words:
        raise ValueError(f"{path}: label list is empty")
    return words


def read_lipreader_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The network weights of an mpc001 checkpoint (`{"model_state_dict": ...}` as written by its
    `CheckpointSaver`, README Model Zoo files), a `{"state_dict": ...}` dict or a raw state dict; read with
    `weights_only=True` (tensors only, never foreign classes), `module.` prefixes removed."""
    from collections.abc import Mapping
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"lipreader checkpoint {path}: no such file")
    from metrics.safe_load import CheckpointReadError, load_checkpoint_file

    try:
        obj, _ = load_checkpoint_file(path)
    except CheckpointReadError as err:
        raise ValueError(f"lipreader checkpoint {err}") from err
    if isinstance(obj, Mapping):
        for key in ("model_state_dict", "state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"lipreader checkpoint {path}: no state dict of tensors found")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_lipreader_weights(net: Lipreader, sd: dict[str, torch.Tensor], source: str = "<state dict>") -> Lipreader:
    """Strict load that names the first missing / unexpected / mis-shaped keys and the file."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    shaped = [k for k in expected if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or shaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
        if shaped:
            parts.append(
                f"{len(shaped)} keys with the wrong shape (first: {shaped[0]}: expected "
                f"{tuple(expected[shaped[0]].shape)}, got {tuple(sd[shaped[0]].shape)})"
            )
        hint = " PReLU keys: use the lrw_resnet18_mstcn_prelu preset." if any("relu" in k for k in unexpected) else ""
        raise ValueError(
            f"lipreader checkpoint {source} does not fit {net.cfg.relu_type} {net.cfg.backend}: "
            + "; ".join(parts)
            + "."
            + hint
        )
    net.load_state_dict(sd, strict=True)
    return net
