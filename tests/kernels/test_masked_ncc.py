"""Masked normalised cross-correlation (emgeom.crossmag.masked_correlate, Rust kernel ncc/)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from emgeom import crossmag
from emgeom.crossmag import MaskedCorrelationPeak, MaskedCorrelationResult, masked_correlate
from emgeom.errors import EmgeomError, InvalidTypeError, InvalidValueError, ShapeError
from emgeom.reference.ncc import (
    _overlaps,
    _prep,
    _threshold,
    masked_ncc_direct,
    masked_ncc_fft,
)


def _texture(shape: tuple[int, int], seed: int, sigma: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = ndimage.gaussian_filter(rng.normal(size=shape), sigma, mode="wrap")
    return t / t.std()


def _near_threshold(ovl, sa, sb, min_overlap):
    """Positions whose overlap is within rounding of the validity threshold."""
    lo, hi = min(sa, sb), max(sa, sb)
    return np.abs(ovl * lo - _threshold(sa, sb, min_overlap)) < 1e-4 * hi


def _kappa(a, b, ma, mb):
    """Condition number of each displacement: Ea/va + Eb/vb + sqrt(Ea·Eb/(va·vb)) (inf where
    the overlap is empty or a side is exactly flat)."""
    ta, wa, _, ea = _prep(a, ma)
    tb, wb, _, eb = _prep(b, mb)
    (nya, nxa), (nyb, nxb) = ta.shape, tb.shape
    k = np.full((nya + nyb - 1, nxa + nxb - 1), np.inf)
    for i, j, sa_, sb_ in _overlaps(ta.shape, tb.shape):
        w = wa[sa_] * wb[sb_]
        o = w.sum()
        if o <= 0:
            continue
        pa, pb = ta[sa_], tb[sb_]
        va = (w * (pa - (w * pa).sum() / o) ** 2).sum()
        vb = (w * (pb - (w * pb).sum() / o) ** 2).sum()
        if va > 0 and vb > 0:
            k[i, j] = ea / va + eb / vb + np.sqrt(ea * eb / (va * vb))
    return k


# ---------------------------------------------------------------------------------------------
# Rust == numpy reference


@st.composite
def _case(draw):
    nya, nxa = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    nyb, nxb = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(nya, nxa)) * draw(st.sampled_from([1.0, 1e-3, 50.0]))
    b = rng.normal(size=(nyb, nxb)) + draw(st.sampled_from([0.0, 3.0, -200.0]))

    def mask(shape):
        kind = draw(st.sampled_from(["none", "binary", "soft"]))
        if kind == "none":
            return None
        m = rng.uniform(size=shape)
        m = np.where(m < 0.25, 0.0, m if kind == "soft" else 1.0)
        m.flat[0] = 1.0  # never all zero
        return m

    return a, b, mask(a.shape), mask(b.shape), draw(st.sampled_from([0.0, 0.1, 0.3, 0.5]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_rust_matches_direct_reference(case):
    a, b, ma, mb, mo = case
    # the kernel stores float32: compare with the float64 reference on the same pixels
    a = a.astype(np.float32).astype(np.float64)
    b = b.astype(np.float32).astype(np.float64)
    ma = None if ma is None else ma.astype(np.float32).astype(np.float64)
    mb = None if mb is None else mb.astype(np.float32).astype(np.float64)
    r = masked_correlate(a, b, reference_mask=ma, moving_mask=mb, min_overlap=mo, n_peaks=3)
    ref, ovl = masked_ncc_direct(a, b, ma, mb, mo)
    got = r.correlation_map
    assert got.shape == (a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1)
    assert r.origin == (b.shape[0] - 1, b.shape[1] - 1)
    assert np.all(np.isfinite(got)) and np.all(np.abs(got) <= 1.0)
    np.testing.assert_allclose(r.overlap_map, ovl, atol=1e-5)
    sa = a.size if ma is None else ma.sum() / ma.max()  # masks scaled to a maximum of 1
    sb = b.size if mb is None else mb.sum() / mb.max()
    # error model of the f32 transforms: |err| ≲ 1e-7·κ (κ: total energy over local variance,
    # large only for overlaps of a few pixels, reachable with a small min_overlap); positions
    # within rounding of the overlap threshold or of the flatness floor (κ ≥ 1e5) are skipped
    kappa = _kappa(a, b, ma, mb)
    ok = ~_near_threshold(ovl, sa, sb, mo) & (kappa < 5e4)
    tol = 1e-6 + 1e-6 * kappa
    assert np.all(np.abs(got - ref)[ok] <= tol[ok]), (np.abs(got - ref) / kappa)[ok].max()
    assert np.all(np.abs(got - ref)[ok & (kappa < 10)] < 1e-5)
    # the float64 FFT reference is the same function
    ref2, ovl2 = masked_ncc_fft(a, b, ma, mb, mo)
    np.testing.assert_allclose(ref2[ok], ref[ok], atol=1e-9)
    np.testing.assert_allclose(ovl2, ovl, atol=1e-9)
    # peaks: valid local maxima, best first, value from the map
    vals = [p.value for p in r.peaks]
    assert vals == sorted(vals, reverse=True)
    for p in r.peaks:
        assert p.value > 0 and 0 < p.overlap <= 1 + 1e-6


def test_non_square_odd_sizes_match_fft_reference_closely():
    a = _texture((67, 90), 1)
    b = _texture((41, 29), 2)
    ma = np.ones(a.shape)
    ma[10:30, 50:70] = 0.0
    mb = np.clip(np.linspace(0, 2, b.shape[1])[None, :] * np.ones(b.shape), 0, 1)  # soft ramp
    r = masked_correlate(a, b, reference_mask=ma, moving_mask=mb, min_overlap=0.2)
    ref, _ = masked_ncc_fft(a, b, ma, mb, 0.2)
    err = np.abs(r.correlation_map - ref).max()
    assert err < 1e-5, err
    assert np.count_nonzero(ref) > 2000


# ---------------------------------------------------------------------------------------------
# known shifts, partial masks, conventions


def _masked_scene():
    """Reference with a bright invalid patch (contamination); moving image with a bright
    invalid corner (the empty corner of a rotated image), true shift d = (17, 9)."""
    base = _texture((160, 160), 5)
    d = (17, 9)
    ref = base[:128, :128].copy()
    mref = np.ones(ref.shape, bool)
    ref[20:60, 70:110] = 30.0
    mref[20:60, 70:110] = False
    mov = base[d[1] : d[1] + 96, d[0] : d[0] + 96].copy()  # reference(x) = moving(x - d)
    yy, xx = np.mgrid[:96, :96]
    corner = xx + yy < 40
    mov[corner] = 30.0
    mmov = ~corner
    return ref, mov, mref, mmov, d


def test_known_shift_with_partial_masks_where_plain_xcorr_fails():
    ref, mov, mref, mmov, d = _masked_scene()
    r = masked_correlate(ref, mov, reference_mask=mref, moving_mask=mmov)
    assert isinstance(r, MaskedCorrelationResult) and isinstance(r.peaks[0], MaskedCorrelationPeak)
    assert abs(r.shift[0] - d[0]) < 0.05 and abs(r.shift[1] - d[1]) < 0.05, r.shift
    assert r.peaks[0].value > 0.999
    # overlap fraction at the peak = valid moving pixels over valid reference, / smaller sum
    expected = np.sum(mref[d[1] : d[1] + 96, d[0] : d[0] + 96] & mmov) / mmov.sum()
    assert r.peaks[0].overlap == pytest.approx(expected, abs=1e-5)
    # plain cross-correlation (same sign convention) is captured by the bright invalid areas
    for filt in (None, crossmag.DEFAULT_FILTER):
        x = crossmag.correlate(ref, mov, filter=filt, pad_fraction=1.0)
        err = np.hypot(x.shift[0] - d[0], x.shift[1] - d[1])
        assert err > 5, (filt, x.shift)
    # NCC without the masks is captured too: the masks are what fixes it
    u = masked_correlate(ref, mov)
    assert np.hypot(u.shift[0] - d[0], u.shift[1] - d[1]) > 5, u.shift


def test_same_sign_convention_as_correlate_and_map_indexing():
    base = _texture((140, 150), 9)
    d = (-12, 7)  # reference(x) = moving(x - d)
    ref = base[20:120, 30:130]
    mov = base[20 + d[1] : 120 + d[1], 30 + d[0] : 130 + d[0]]  # moving(u) = ref(u + d)
    x = crossmag.correlate(ref, mov, filter=None)
    r = masked_correlate(ref, mov)
    assert np.allclose(x.shift, d, atol=0.2)  # tapered xcorr: small sub-pixel bias
    assert np.allclose(r.shift, d, atol=0.02)
    iy, ix = np.unravel_index(np.argmax(r.correlation_map), r.correlation_map.shape)
    assert r.displacement(int(iy), int(ix)) == d


def test_subpixel_shift():
    # band-limited image shifted by a fractional amount with an exact Fourier shift
    base = _texture((128, 128), 3, sigma=3.0)
    d = (5.3, -2.6)
    ky = np.fft.fftfreq(128)[:, None]
    kx = np.fft.fftfreq(128)[None, :]
    mov_full = np.fft.ifft2(np.fft.fft2(base) * np.exp(2j * np.pi * (kx * d[0] + ky * d[1]))).real
    # reference(x) = moving(x - d)  <=>  moving(u) = base(u + d)
    ref = base[16:112, 16:112]
    mov = mov_full[16:112, 16:112]
    r = masked_correlate(ref, mov)
    # measured over 20 random shifts of this texture: max error 0.018 px, RMS 0.010 px
    assert abs(r.shift[0] - d[0]) < 0.04 and abs(r.shift[1] - d[1]) < 0.04, r.shift


# ---------------------------------------------------------------------------------------------
# peer: scikit-image


def test_agrees_with_skimage_cross_correlate_masked():
    mpc = pytest.importorskip("skimage.registration._masked_phase_cross_correlation")
    ref, mov, mref, mmov, _ = _masked_scene()
    # skimage 0.26 checks non-transformed axes with axes=(-2, -1) against range(ndim) and
    # rejects different shapes; axes=(0, 1) is the same computation
    sk = mpc.cross_correlate_masked(ref, mov, mref, mmov, mode="full", axes=(0, 1))
    r = masked_correlate(ref, mov, reference_mask=mref, moving_mask=mmov)
    got = r.correlation_map
    assert sk.shape == got.shape
    both = (sk != 0) & (got != 0)
    assert both.sum() > 0.3 * got.size
    assert np.abs(sk[both] - got[both]).max() < 2e-5
    # without masks the overlap thresholds coincide (max overlap = smaller image size)
    sk = mpc.cross_correlate_masked(
        ref, mov, np.ones(ref.shape, bool), np.ones(mov.shape, bool), mode="full", axes=(0, 1)
    )
    got = masked_correlate(ref, mov).correlation_map
    assert np.array_equal(sk != 0, got != 0)
    # unmasked, the bright patch holds ~99% of the reference energy: displacements that miss
    # it have ~100x less local variance (f32 error ~1e-7 x that ratio)
    assert np.abs(sk - got).max() < 1e-4


# ---------------------------------------------------------------------------------------------
# numerics: offsets, flat and empty inputs


def test_large_offset_no_cancellation():
    # counts ~1e4 with a unit signal: f32 Padfield without mean removal loses everything
    sig = _texture((96, 96), 11) * 3.0
    a = (1e4 + sig).astype(np.float32)
    b = a[20:70, 10:80].copy()
    ma = np.ones(a.shape, bool)
    ma[40:60, 30:50] = False
    r = masked_correlate(a, b, reference_mask=ma)
    # exact answer: NCC is offset invariant, float64 on the same (f32-rounded) pixels
    ref, _ = masked_ncc_fft(a.astype(np.float64) - 1e4, b.astype(np.float64) - 1e4, ma, None)
    assert np.abs(r.correlation_map - ref).max() < 2e-5
    assert r.shift == pytest.approx((10, 20), abs=0.01)
    mpc = pytest.importorskip("skimage.registration._masked_phase_cross_correlation")
    sk32 = mpc.cross_correlate_masked(a, b, ma, np.ones(b.shape, bool), axes=(0, 1))
    both = (sk32 != 0) & (ref != 0)
    assert np.abs(sk32[both] - ref[both]).max() > 0.1  # what the careful sums avoid


def test_constant_images_give_zero_not_nan():
    a = np.full((20, 30), 7.0)
    b = _texture((10, 12), 1)
    for x, y in ((a, b), (b, a), (a, a[:5, :5])):
        r = masked_correlate(x, y)
        assert np.all(r.correlation_map == 0)
        assert r.peaks == ()
        with pytest.raises(InvalidValueError, match="no peak"):
            _ = r.shift
    # flat region inside an otherwise textured image: 0 where the overlap is flat
    t = _texture((40, 40), 2)
    t[:, :20] = 3.0
    r = masked_correlate(t, np.full((10, 10), 1.0) + np.eye(10))
    assert np.all(np.isfinite(r.correlation_map))


def test_empty_overlap_gives_zero():
    a = _texture((16, 16), 1)
    b = _texture((12, 12), 2)
    ma = np.zeros(a.shape)
    ma[0, 0] = 1
    mb = np.zeros(b.shape)
    mb[-1, -1] = 1
    r = masked_correlate(a, b, reference_mask=ma, moving_mask=mb, min_overlap=0.0)
    assert np.all(r.correlation_map == 0) and r.peaks == ()
    assert r.overlap_map.max() == pytest.approx(1.0)  # the one displacement that overlaps
    assert r.n_valid == 1


# ---------------------------------------------------------------------------------------------
# errors and threads


def test_bad_input():
    a = _texture((16, 16), 1)
    b = _texture((8, 8), 2)
    with pytest.raises(ShapeError, match="reference_mask"):
        masked_correlate(a, b, reference_mask=np.ones((8, 8)))
    with pytest.raises(InvalidValueError, match=r"moving_mask.*\[0, 1\]"):
        masked_correlate(a, b, moving_mask=np.full((8, 8), 1.5))
    with pytest.raises(InvalidValueError, match="moving_mask"):
        masked_correlate(a, b, moving_mask=np.full((8, 8), np.nan))
    with pytest.raises(InvalidValueError, match="all zero"):
        masked_correlate(a, b, reference_mask=np.zeros((16, 16)))
    with pytest.raises(InvalidTypeError, match="moving_mask"):
        masked_correlate(a, b, moving_mask=np.full((8, 8), "x"))
    with pytest.raises(InvalidValueError, match="min_overlap"):
        masked_correlate(a, b, min_overlap=1.5)
    with pytest.raises(InvalidValueError, match="n_peaks"):
        masked_correlate(a, b, n_peaks=0)
    with pytest.raises(InvalidTypeError, match="reference"):
        masked_correlate(a + 1j, b)
    with pytest.raises(ShapeError, match="moving"):
        masked_correlate(a, np.ones((2, 3, 4)))
    with pytest.raises(InvalidValueError, match="moving"):
        masked_correlate(a, np.full((4, 4), np.inf))
    with pytest.raises(InvalidValueError, match="n_threads"):
        masked_correlate(a, b, n_threads=0)


def test_thread_count_bit_identical():
    ref, mov, mref, mmov, _ = _masked_scene()
    r1 = masked_correlate(ref, mov, reference_mask=mref, moving_mask=mmov, n_threads=1)
    r2 = masked_correlate(ref, mov, reference_mask=mref, moving_mask=mmov, n_threads=2)
    assert np.array_equal(r1.correlation_map, r2.correlation_map)
    assert np.array_equal(r1.overlap_map, r2.overlap_map)
    assert r1.peaks == r2.peaks


def test_box_sums_equal_the_transform_path():
    """No mask (box sums from f64 integral images) == a uniform 0.5 mask (all six terms as
    FFT correlations): a constant factor on a mask changes nothing."""
    a = _texture((50, 61), 3) + 100.0
    b = _texture((33, 24), 4)
    mb = np.ones(b.shape)
    mb[:5, :7] = 0
    for ma_, mb_ in ((None, None), (None, mb), (np.ones(a.shape), mb)):
        r = masked_correlate(a, b, reference_mask=ma_, moving_mask=mb_)
        half_a = np.full(a.shape, 0.5) if ma_ is None else 0.5 * ma_
        half_b = np.full(b.shape, 0.5) if mb_ is None else 0.5 * mb_
        f = masked_correlate(a, b, reference_mask=half_a, moving_mask=half_b)
        np.testing.assert_allclose(f.overlap_map, r.overlap_map, atol=1e-6)
        assert r.n_valid == f.n_valid > 1000
        assert np.abs(r.correlation_map - f.correlation_map).max() < 1e-5
        assert r.map_mean == pytest.approx(f.map_mean, abs=1e-6)
        assert r.shift == pytest.approx(f.shift, abs=1e-4)


def test_tiny_mask_weights_scale_out():
    a = _texture((40, 40), 6)
    b = a[5:30, 8:28]
    r = masked_correlate(a, b)
    t = masked_correlate(a, b, reference_mask=np.full(a.shape, 1e-30))
    assert np.round(t.shift).tolist() == [8, 5]
    assert t.shift == pytest.approx(r.shift, abs=1e-4)
    assert np.abs(r.correlation_map - t.correlation_map).max() < 1e-5


@pytest.mark.realdata
def test_real_micrograph_offset_and_masks():
    """A real micrograph (mean 6802 counts, σ 8.9: offset/σ ≈ 760) with a saturated stripe in
    the reference and a dead band in the moving crop, both masked: the exact shift, and the map
    equals a float64 evaluation — where float32 Padfield without mean removal fails."""
    from emgeom.io.mrc import read_mrc
    from tests.conftest import shared_file

    m = read_mrc(shared_file("micrographs", "mce_Ucsf_stack_1142_DW.mrc")).data
    m = np.asarray(m, dtype=np.float32)
    d = (23, -14)
    ref = m[200:600, 150:550].copy()
    mov = m[200 + d[1] : 520 + d[1], 150 + d[0] : 490 + d[0]].copy()
    mref = np.ones(ref.shape, bool)
    mref[:, 200:215] = False
    ref[~mref] = 65535.0
    mmov = np.ones(mov.shape, bool)
    mmov[150:200, :] = False
    mov[~mmov] = 0.0
    r = masked_correlate(ref, mov, reference_mask=mref, moving_mask=mmov)
    assert np.round(r.shift).tolist() == list(d)
    assert np.allclose(r.shift, d, atol=0.05) and r.peaks[0].value > 0.99
    exact, _ = masked_ncc_fft(ref.astype(np.float64), mov.astype(np.float64), mref, mmov)
    assert np.abs(r.correlation_map - exact).max() < 1e-5
    mpc = pytest.importorskip("skimage.registration._masked_phase_cross_correlation")
    sk32 = mpc.cross_correlate_masked(ref, mov, mref, mmov, axes=(0, 1))
    both = (sk32 != 0) & (exact != 0)
    assert np.abs(sk32[both] - exact[both]).max() > 0.1


def _brute_peaks(m, n, sep):
    ny, nx = m.shape
    c = []
    for y in range(ny):
        for x in range(nx):
            v = m[y, x]
            if v <= 0:
                continue
            ok = True
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    yy, xx = y + dy, x + dx
                    if (dy, dx) == (0, 0) or not (0 <= yy < ny and 0 <= xx < nx):
                        continue
                    earlier = dy < 0 or (dy == 0 and dx < 0)
                    w = m[yy, xx]
                    if (earlier and w >= v) or (not earlier and w > v):
                        ok = False
            if ok:
                c.append((-v, y, x))
    out = []
    for _, y, x in sorted(c):
        if len(out) == n:
            break
        if all((x - px) ** 2 + (y - py) ** 2 >= sep * sep for py, px in out):
            out.append((y, x))
    return out


@pytest.mark.parametrize(("n", "sep"), [(5, 3.0), (12, 25.0), (40, 0.0), (5, 40.0)])
def test_peaks_equal_brute_force_selection(n, sep):
    rng = np.random.default_rng(n)
    a = rng.normal(size=(40, 50))
    b = rng.normal(size=(30, 20))
    r = masked_correlate(a, b, n_peaks=n, min_separation=sep, min_overlap=0.1)
    got = [
        (round(p.dy + r.origin[0]), round(p.dx + r.origin[1]))
        for p in r.peaks  # integer maxima (sub-pixel offsets are within ±0.5)
    ]
    assert got == _brute_peaks(r.correlation_map, n, sep)
    for p, (iy, ix) in zip(r.peaks, got, strict=True):
        assert p.value == r.correlation_map[iy, ix]
        assert p.overlap == pytest.approx(r.overlap_map[iy, ix])
    valid = r.overlap_map >= 0.1 - 1e-6
    assert r.n_valid == valid.sum()
    assert r.map_mean == pytest.approx(r.correlation_map[valid].mean(), abs=1e-6)
    assert r.map_std == pytest.approx(r.correlation_map[valid].std(), abs=1e-6)


_scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1e-300, 1e300, True, None, "1.0", b"x", 1j]),
)
_garbage = st.one_of(
    _scalars,
    hnp.arrays(
        dtype=st.sampled_from([np.float32, np.float64, np.int16, np.uint8, np.complex64, np.bool_]),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    ),
    st.lists(_scalars, max_size=4),
)
_SLOTS = (
    "reference",
    "moving",
    "reference_mask",
    "moving_mask",
    "min_overlap",
    "n_peaks",
    "min_separation",
    "n_threads",
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slot=st.sampled_from(_SLOTS), bad=_garbage)
def test_garbage_raises_only_emgeom_errors(slot, bad):
    rng = np.random.default_rng(0)
    kw = {
        "reference": rng.normal(size=(9, 8)),
        "moving": rng.normal(size=(5, 6)),
        "reference_mask": None,
        "moving_mask": np.ones((5, 6), bool),
        "min_overlap": 0.3,
        "n_peaks": 3,
        "min_separation": 2.0,
        "n_threads": None,
    }
    kw[slot] = bad
    ref, mov = kw.pop("reference"), kw.pop("moving")
    try:
        r = masked_correlate(ref, mov, **kw)
    except EmgeomError:
        return
    assert np.all(np.isfinite(r.correlation_map)) and np.all(np.abs(r.correlation_map) <= 1)
    assert all(np.isfinite([p.dx, p.dy, p.value, p.overlap]).all() for p in r.peaks)
