"""Synthetic files in the *official* formats, for converter tests (no TensorFlow needed).

- :func:`tf_generator_variables` / :func:`tf_discriminator_variables`: random *raw* variables
  (before the equalized-lr scale) with the official StyleGAN v1 names, shapes and layouts
  (``[kh, kw, in, out]`` kernels, ``[in, out]`` dense weights), in TF creation order, for any
  small config.
- :func:`official_pickle_bytes`: a pickle of ``dnnlib.tflib.network.Network`` objects written the
  way the official code writes them (``Network.__getstate__`` = ``{version, name, static_kwargs,
  components, build_module_src, build_func_name, variables}``). The class reference and the NumPy
  reconstruction functions are written under the official module names (``dnnlib.tflib.network``,
  ``numpy.core.multiarray`` as numpy 1.x wrote them), so reading it back *must* go through
  ghfeat's restricted unpickler: no ``dnnlib`` module exists here.
- :func:`write_stylegan_pkl` (``(G, D, Gs)``), :func:`write_encoder_pkl` (``(E, G, D, Gs)``) and
  :func:`write_genforce_pth` (``{'generator', 'discriminator', 'generator_smooth'}`` state dicts
  with genforce's key names, PyTorch layouts, blur-kernel buffers and ``lod``).
"""
from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# An embedded "source" that would fail loudly if anything ever executed it.
BUILD_SRC = "raise RuntimeError('ghfeat must never execute the source embedded in a network pickle')\n"


def nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    return min(int(fmap_base / 2.0 ** stage), fmap_max)


@dataclass
class TinyConfig:
    """A small StyleGAN v1 configuration (official graph semantics, reduced widths)."""
    resolution: int = 32
    fmap_base: int = 64
    fmap_max: int = 16
    z_dim: int = 12
    w_dim: int = 12
    mapping_layers: int = 3
    num_channels: int = 3
    mapping_lrmul: float = 0.01
    extra_static: dict = field(default_factory=dict)

    @property
    def log2(self) -> int:
        return int(np.log2(self.resolution))

    def nf(self, stage: int) -> int:
        return nf(stage, self.fmap_base, self.fmap_max)

    def g_static(self) -> dict:
        """``static_kwargs`` as the official training script records them for G (G_args + dataset)."""
        return dict(num_channels=self.num_channels, resolution=self.resolution, label_size=0,
                    fmap_base=self.fmap_base, fmap_max=self.fmap_max, latent_size=self.z_dim,
                    dlatent_size=self.w_dim, mapping_layers=self.mapping_layers, mapping_fmaps=self.w_dim,
                    mapping_lrmul=self.mapping_lrmul, **self.extra_static)

    def d_static(self) -> dict:
        return dict(num_channels=self.num_channels, resolution=self.resolution, label_size=0,
                    fmap_base=self.fmap_base, fmap_max=self.fmap_max)


def _rand(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def tf_generator_variables(cfg: TinyConfig, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Raw official variables of ``G_style``: ``{"G": own, "G_mapping": ..., "G_synthesis": ...}``.

    Values are random (weights N(0, 1) like the raw TF init, mapping weights N(0, 1/lrmul**2);
    biases, noise strengths, StyleMod biases and w_avg nonzero so that every tensor matters).
    """
    rng = np.random.default_rng(seed)
    lr = cfg.mapping_lrmul
    mapping = {}
    for i in range(cfg.mapping_layers):
        fin = cfg.z_dim if i == 0 else cfg.w_dim
        mapping[f"Dense{i}/weight"] = _rand(rng, (fin, cfg.w_dim), 1.0 / lr)
        mapping[f"Dense{i}/bias"] = _rand(rng, (cfg.w_dim,), 0.2 / lr)

    syn = {"lod": np.float32(0.0)}   # a NumPy scalar, as tflib.run returns it
    L = 2 * cfg.log2 - 2
    for i in range(L):
        r = 4 * 2 ** (i // 2)
        syn[f"noise{i}"] = _rand(rng, (1, 1, r, r))

    def epilogue(scope, c):
        syn[f"{scope}/Noise/weight"] = _rand(rng, (c,), 0.3)
        syn[f"{scope}/bias"] = _rand(rng, (c,), 0.3)
        syn[f"{scope}/StyleMod/weight"] = _rand(rng, (cfg.w_dim, 2 * c))
        syn[f"{scope}/StyleMod/bias"] = _rand(rng, (2 * c,), 0.3)

    def torgb(res_log2, c):
        lod = cfg.log2 - res_log2
        syn[f"ToRGB_lod{lod}/weight"] = _rand(rng, (1, 1, c, cfg.num_channels))
        syn[f"ToRGB_lod{lod}/bias"] = _rand(rng, (cfg.num_channels,), 0.1)

    c = cfg.nf(1)
    syn["4x4/Const/const"] = _rand(rng, (1, c, 4, 4))
    epilogue("4x4/Const", c)
    syn["4x4/Conv/weight"] = _rand(rng, (3, 3, c, c))
    epilogue("4x4/Conv", c)
    torgb(2, c)   # 'linear' structure (the template graph) creates ToRGB of each lod in order
    for res_log2 in range(3, cfg.log2 + 1):
        r = 2 ** res_log2
        cin, cout = cfg.nf(res_log2 - 2), cfg.nf(res_log2 - 1)
        syn[f"{r}x{r}/Conv0_up/weight"] = _rand(rng, (3, 3, cin, cout))
        epilogue(f"{r}x{r}/Conv0_up", cout)
        syn[f"{r}x{r}/Conv1/weight"] = _rand(rng, (3, 3, cout, cout))
        epilogue(f"{r}x{r}/Conv1", cout)
        torgb(res_log2, cout)
    top = {"lod": np.float32(0.0), "dlatent_avg": _rand(rng, (cfg.w_dim,), 0.5)}
    return {"G": top, "G_mapping": mapping, "G_synthesis": syn}


def tf_discriminator_variables(cfg: TinyConfig, seed: int = 1, mbstd_num_features: int = 1) -> dict[str, np.ndarray]:
    """Raw official variables of ``D_basic`` (own variables; D has no components)."""
    rng = np.random.default_rng(seed)
    d = {"lod": np.float32(0.0)}

    def fromrgb(res_log2):
        lod = cfg.log2 - res_log2
        d[f"FromRGB_lod{lod}/weight"] = _rand(rng, (1, 1, cfg.num_channels, cfg.nf(res_log2 - 1)))
        d[f"FromRGB_lod{lod}/bias"] = _rand(rng, (cfg.nf(res_log2 - 1),), 0.2)

    fromrgb(cfg.log2)
    for res_log2 in range(cfg.log2, 2, -1):
        r = 2 ** res_log2
        c0, c1 = cfg.nf(res_log2 - 1), cfg.nf(res_log2 - 2)
        d[f"{r}x{r}/Conv0/weight"] = _rand(rng, (3, 3, c0, c0))
        d[f"{r}x{r}/Conv0/bias"] = _rand(rng, (c0,), 0.2)
        d[f"{r}x{r}/Conv1_down/weight"] = _rand(rng, (3, 3, c0, c1))
        d[f"{r}x{r}/Conv1_down/bias"] = _rand(rng, (c1,), 0.2)
        fromrgb(res_log2 - 1)
    c = cfg.nf(1)
    d["4x4/Conv/weight"] = _rand(rng, (3, 3, c + mbstd_num_features, c))
    d["4x4/Conv/bias"] = _rand(rng, (c,), 0.2)
    d["4x4/Dense0/weight"] = _rand(rng, (c * 16, cfg.nf(0)))
    d["4x4/Dense0/bias"] = _rand(rng, (cfg.nf(0),), 0.2)
    d["4x4/Dense1/weight"] = _rand(rng, (cfg.nf(0), 1))
    d["4x4/Dense1/bias"] = _rand(rng, (1,), 0.2)
    return d


def encoder_variables_stub(seed: int = 2) -> dict[str, np.ndarray]:
    """A few encoder-like variables (for tests that only route the E network, not convert it)."""
    rng = np.random.default_rng(seed)
    return {"Conv0/weight": _rand(rng, (7, 7, 3, 4))}


# ---------------------------------------------------------------------------------------------
# Pickling like dnnlib.tflib
# ---------------------------------------------------------------------------------------------
class FakeNetwork:
    """Pickles exactly like ``dnnlib.tflib.network.Network`` (its ``__getstate__`` layout)."""

    def __init__(self, name, build_func_name, static_kwargs, variables, components=None, version=3):
        self.name = name
        self._state = {
            "version": version, "name": name, "static_kwargs": dict(static_kwargs),
            "components": dict(components or {}), "build_module_src": BUILD_SRC,
            "build_func_name": build_func_name, "variables": list(variables.items()),
        }

    def __getstate__(self):
        return self._state


class _OfficialPickler(pickle._Pickler):
    """Pure-Python pickler that writes globals under the names the official files contain."""

    def __init__(self, file, protocol, numpy_names):
        super().__init__(file, protocol=protocol)
        self.numpy_names = numpy_names

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None)
        qual = name or getattr(obj, "__qualname__", None)
        if obj is FakeNetwork:
            module, qual = "dnnlib.tflib.network", "Network"
        elif module and module.startswith("numpy._core") and self.numpy_names == "1.x":
            module = module.replace("numpy._core", "numpy.core", 1)
        else:
            return super().save_global(obj, name)
        if self.proto >= 4:
            self.save(module)
            self.save(qual)
            self.write(pickle.STACK_GLOBAL)
        else:
            self.write(pickle.GLOBAL + f"{module}\n{qual}\n".encode())
        self.memoize(obj)


def official_pickle_bytes(obj, protocol: int = 4, numpy_names: str = "1.x") -> bytes:
    """Pickle ``obj`` (tuples of :class:`FakeNetwork`) as the official ``misc.save_pkl`` did
    (protocol 4 under Python 3.6 / numpy 1.x); ``numpy_names="2.x"`` keeps ``numpy._core``."""
    buf = io.BytesIO()
    _OfficialPickler(buf, protocol, numpy_names).dump(obj)
    return buf.getvalue()


def g_network(cfg: TinyConfig, gv: dict, name: str = "G") -> FakeNetwork:
    static = cfg.g_static()
    mapping = FakeNetwork("G_mapping", "training.networks_stylegan.G_mapping",
                          dict(static, dlatent_broadcast=2 * cfg.log2 - 2), gv["G_mapping"])
    synthesis = FakeNetwork("G_synthesis", "training.networks_stylegan.G_synthesis", static, gv["G_synthesis"])
    return FakeNetwork(name, "training.networks_stylegan.G_style", static, gv["G"],
                       {"synthesis": synthesis, "mapping": mapping})


def d_network(cfg: TinyConfig, dv: dict) -> FakeNetwork:
    return FakeNetwork("D", "training.networks_stylegan.D_basic", cfg.d_static(), dv)


@dataclass
class OfficialSet:
    """The raw variables written into a synthetic official file (the test's ground truth)."""
    cfg: TinyConfig
    G: dict          # {"G", "G_mapping", "G_synthesis"} raw variables of the training generator
    Gs: dict         # same for the smoothed generator (different values)
    D: dict
    path: Path | None = None


def make_official_set(cfg: TinyConfig, seed: int = 0) -> OfficialSet:
    return OfficialSet(cfg, tf_generator_variables(cfg, seed), tf_generator_variables(cfg, seed + 100),
                       tf_discriminator_variables(cfg, seed + 200))


def write_stylegan_pkl(path, cfg: TinyConfig, seed: int = 0, protocol: int = 4, numpy_names: str = "1.x") -> OfficialSet:
    """Write ``(G, D, Gs)`` like ``stylegan-*-256.pkl``; returns the raw variables."""
    s = make_official_set(cfg, seed)
    nets = (g_network(cfg, s.G, "G"), d_network(cfg, s.D), g_network(cfg, s.Gs, "Gs"))
    Path(path).write_bytes(official_pickle_bytes(nets, protocol, numpy_names))
    s.path = Path(path)
    return s


def write_encoder_pkl(path, cfg: TinyConfig, encoder_variables: dict, seed: int = 0,
                      encoder_static: dict | None = None) -> OfficialSet:
    """Write ``(E, G, D, Gs)`` like ``ghfeat-encoder-*-256.pkl``; ``encoder_variables`` are E's."""
    s = make_official_set(cfg, seed)
    E = FakeNetwork("E_gpu0", "training.networks_ghfeat.E_ghfeat",
                    encoder_static or dict(size=cfg.resolution), encoder_variables)
    nets = (E, g_network(cfg, s.G, "G"), d_network(cfg, s.D), g_network(cfg, s.Gs, "Gs"))
    Path(path).write_bytes(official_pickle_bytes(nets))
    s.path = Path(path)
    return s


# ---------------------------------------------------------------------------------------------
# genforce .pth
# ---------------------------------------------------------------------------------------------
def _blur_kernel(channels: int) -> np.ndarray:
    k = np.array([1.0, 2.0, 1.0], np.float32)
    k = np.outer(k, k) / 16.0
    return np.tile(k[None, None], (channels, 1, 1, 1)).astype(np.float32)


def genforce_generator_state(cfg: TinyConfig, gv: dict):
    """genforce ``StyleGANGenerator.state_dict()`` holding the raw official values (their converter:
    conv ``permute(3, 2, 0, 1)``, dense/StyleMod ``permute(1, 0)``, nothing else)."""
    import torch

    t = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32)))  # noqa: E731
    m, s = gv["G_mapping"], gv["G_synthesis"]
    sd = {}
    for i in range(cfg.mapping_layers):
        sd[f"mapping.dense{i}.weight"] = t(m[f"Dense{i}/weight"].T)
        sd[f"mapping.dense{i}.bias"] = t(m[f"Dense{i}/bias"])
    sd["truncation.w_avg"] = t(gv["G"]["dlatent_avg"])
    sd["synthesis.lod"] = torch.zeros(())
    for b, res_log2 in enumerate(range(2, cfg.log2 + 1)):
        r = 2 ** res_log2
        names = (("4x4/Const", "4x4/Conv") if r == 4 else (f"{r}x{r}/Conv0_up", f"{r}x{r}/Conv1"))
        for j, scope in enumerate(names):
            i = 2 * b + j
            p = f"synthesis.layer{i}"
            if i == 0:
                sd[f"{p}.const"] = t(s["4x4/Const/const"])
            else:
                sd[f"{p}.weight"] = t(s[f"{scope}/weight"].transpose(3, 2, 0, 1))
            sd[f"{p}.bias"] = t(s[f"{scope}/bias"])
            sd[f"{p}.apply_noise.noise"] = t(s[f"noise{i}"])
            sd[f"{p}.apply_noise.weight"] = t(s[f"{scope}/Noise/weight"])
            sd[f"{p}.style.weight"] = t(s[f"{scope}/StyleMod/weight"].T)
            sd[f"{p}.style.bias"] = t(s[f"{scope}/StyleMod/bias"])
            if j == 0 and r > 4:
                sd[f"{p}.blur.kernel"] = t(_blur_kernel(s[f"{scope}/bias"].shape[0]))
        lod = cfg.log2 - res_log2
        sd[f"synthesis.output{b}.weight"] = t(s[f"ToRGB_lod{lod}/weight"].transpose(3, 2, 0, 1))
        sd[f"synthesis.output{b}.bias"] = t(s[f"ToRGB_lod{lod}/bias"])
    return sd


def genforce_discriminator_state(cfg: TinyConfig, dv: dict):
    """genforce ``StyleGANDiscriminator.state_dict()`` for the raw official values."""
    import torch

    t = lambda a: torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32)))  # noqa: E731
    sd = {"lod": torch.zeros(())}
    for b, res_log2 in enumerate(range(cfg.log2, 1, -1)):
        r = 2 ** res_log2
        sd[f"input{b}.weight"] = t(dv[f"FromRGB_lod{b}/weight"].transpose(3, 2, 0, 1))
        sd[f"input{b}.bias"] = t(dv[f"FromRGB_lod{b}/bias"])
        if r > 4:
            l0, l1 = f"{r}x{r}/Conv0", f"{r}x{r}/Conv1_down"
            sd[f"layer{2 * b}.weight"] = t(dv[f"{l0}/weight"].transpose(3, 2, 0, 1))
            sd[f"layer{2 * b}.bias"] = t(dv[f"{l0}/bias"])
            sd[f"layer{2 * b + 1}.weight"] = t(dv[f"{l1}/weight"].transpose(3, 2, 0, 1))
            sd[f"layer{2 * b + 1}.bias"] = t(dv[f"{l1}/bias"])
            sd[f"layer{2 * b + 1}.blur.kernel"] = t(_blur_kernel(dv[f"{l0}/bias"].shape[0]))
        else:
            sd[f"layer{2 * b}.weight"] = t(dv["4x4/Conv/weight"].transpose(3, 2, 0, 1))
            sd[f"layer{2 * b}.bias"] = t(dv["4x4/Conv/bias"])
            sd[f"layer{2 * b + 1}.weight"] = t(dv["4x4/Dense0/weight"].T)
            sd[f"layer{2 * b + 1}.bias"] = t(dv["4x4/Dense0/bias"])
            sd[f"layer{2 * b + 2}.weight"] = t(dv["4x4/Dense1/weight"].T)
            sd[f"layer{2 * b + 2}.bias"] = t(dv["4x4/Dense1/bias"])
    return sd


def write_genforce_pth(path, s: OfficialSet, wrap_models: bool = False) -> Path:
    """Write a genforce checkpoint for the same raw values as ``s`` (``torch.save``)."""
    import torch

    state = {"generator": genforce_generator_state(s.cfg, s.G),
             "discriminator": genforce_discriminator_state(s.cfg, s.D),
             "generator_smooth": genforce_generator_state(s.cfg, s.Gs)}
    if wrap_models:
        state = {"models": state}
    torch.save(state, path)
    return Path(path)
