//! The fast paths of the AVX2 interior: neighbourhoods consecutive in memory ([`fast8`]) or
//! with one column or row step inside the group ([`step8`]), read with plain vector loads.
use super::{Anchor, Offsets, Stencil8};
use std::arch::x86_64::*;

/// The 4 taps of 8 pixels whose neighbourhoods start at `p + k`: vector `c` holds `p[k + c]`
/// (read through `taps`).
///
/// # Safety
/// `p .. p + 11` (and `taps`' offset from them) inside one allocation.
#[inline(always)]
pub(super) unsafe fn consecutive4<T: Taps>(p: *const f32, taps: &T) -> [__m256; 4] {
    // SAFETY: by the caller's contract.
    unsafe {
        [
            taps.at(p),
            taps.at(p.add(1)),
            taps.at(p.add(2)),
            taps.at(p.add(3)),
        ]
    }
}

/// How [`Stencil8::run8`] reads the 8 lanes of one tap starting at `q`.
pub(super) trait Taps {
    /// # Safety
    /// `q .. q + 8` (and any offset the implementation adds) inside one allocation.
    unsafe fn at(&self, q: *const f32) -> __m256;
}

/// Lane k reads `q[k]`.
pub(super) struct Plain;

impl Taps for Plain {
    #[inline(always)]
    unsafe fn at(&self, q: *const f32) -> __m256 {
        // SAFETY: by the caller's contract; loadu has no alignment requirement.
        unsafe { _mm256_loadu_ps(q) }
    }
}

/// Lane k reads `q[k + off]` where `moved` is set, else `q[k]`: the lanes past a column step
/// (`off = ±1`) or a row step (`off = ±nx`) inside a group.
pub(super) struct Moved {
    off: isize,
    moved: __m256,
}

impl Taps for Moved {
    #[inline(always)]
    unsafe fn at(&self, q: *const f32) -> __m256 {
        // SAFETY: by the caller's contract (both q and q + off ranges inside the source).
        unsafe {
            _mm256_blendv_ps(
                _mm256_loadu_ps(q),
                _mm256_loadu_ps(q.offset(self.off)),
                self.moved,
            )
        }
    }
}

/// Whether every lane of `tx` and `ty` is in [0, 1) (sign bit of `t` clear and of `t − 1`
/// set; −0.0 counts as outside, which only sends a pixel to the general path).
#[inline(always)]
pub(super) unsafe fn in_unit(tx: __m256, ty: __m256) -> bool {
    let one = _mm256_set1_ps(1.0);
    let okx = _mm256_andnot_ps(tx, _mm256_sub_ps(tx, one));
    let oky = _mm256_andnot_ps(ty, _mm256_sub_ps(ty, one));
    _mm256_movemask_ps(_mm256_and_ps(okx, oky)) == 0xFF
}

/// The top-left tap (column, row) of lane 0 of the group at offset `j` from the anchor `a`.
#[inline(always)]
fn corner<S: Stencil8>(a: Anchor, j: usize) -> (isize, isize) {
    (a.ix as isize + j as isize - S::LO, a.iy as isize - S::LO)
}

/// Whether the taps of 8 consecutive lanes from the corner `(c0, r0)` — columns
/// `c0 .. c0 + 7 + ROWS`, rows `r0 .. r0 + ROWS` — widened by `grow` = (left, right, up, down)
/// pixels lie inside the `nx × ny` image.
#[inline(always)]
fn taps_inside<S: Stencil8>(
    (nx, ny): (usize, usize),
    (c0, r0): (isize, isize),
    grow: [isize; 4],
) -> bool {
    let side = S::ROWS as isize;
    c0 - grow[0] >= 0
        && c0 + 7 + side + grow[1] <= nx as isize
        && r0 - grow[2] >= 0
        && r0 + side + grow[3] <= ny as isize
}

/// The fast path of one group of 8 output pixels whose lanes lie at fractions `d` from the
/// anchor `a` plus `(j, 0)`, `j` = the group's offset from the anchor in pixels: taken when
/// every lane's position relative to (`a.ix + j + k`, `a.iy`) has fractions in [0, 1) — the
/// neighbourhoods are consecutive in one set of source rows, the common case of a
/// near-identity map. Then the fractions are the anchor's plus `d` (one add each; no floors or
/// index arithmetic) and the taps are plain vector loads. `d` is small (`|j + k|·|a − 1|`), so
/// its f32 rounding moves a position by less than 1e-6 px for magnification corrections.
/// Returns false (writing nothing) otherwise: a row or column step inside the group or since
/// the anchor, or a neighbourhood touching the border.
///
/// # Safety
/// `src` is (`base`, `nx`, `ny`): `base` points to the `nx·ny` (both >= `MIN_SIDE`) source
/// pixels; AVX2 and FMA present.
#[inline(always)]
pub(super) unsafe fn fast8<S: Stencil8>(
    src: (*const f32, usize, usize),
    a: Anchor,
    j: usize,
    d: &Offsets,
    o: &mut [f32],
) -> bool {
    let (base, nx, ny) = src;
    let (tx, ty) = a.plus(d);
    let (c0, r0) = corner::<S>(a, j);
    if !(taps_inside::<S>((nx, ny), (c0, r0), [0; 4]) && in_unit(tx, ty)) {
        return false;
    }
    // SAFETY: the taps (columns c0 .. c0 + 7 + ROWS, rows r0 .. r0 + ROWS) are inside the
    // image by `taps_inside`; `o` holds 8 f32.
    unsafe { S::run8(base.offset(r0 * nx as isize + c0), nx, &Plain, tx, ty, o) };
    true
}

/// One group of 8 output pixels at offset `j` from the anchor `a` (fractions `d`, as for
/// [`fast8`]) with exactly one column step or one row step between the anchor and its last
/// lane — the usual reason [`fast8`] fails on a magnification correction: the lanes past the
/// step (possibly all of them) read their neighbourhoods one column (or row) further, blended
/// in ([`Moved`]), and use the fraction minus that step. Returns false (writing nothing) for
/// anything else (both steps, two steps, a neighbourhood touching the border).
///
/// # Safety
/// As for [`fast8`].
#[inline(always)]
pub(super) unsafe fn step8<S: Stencil8>(
    src: (*const f32, usize, usize),
    a: Anchor,
    j: usize,
    d: &Offsets,
    o: &mut [f32],
) -> bool {
    let (base, nx, ny) = src;
    let (tx, ty) = a.plus(d);
    let (flx, fly) = (_mm256_floor_ps(tx), _mm256_floor_ps(ty));
    let zero = _mm256_setzero_ps();
    let mx = _mm256_cmp_ps::<_CMP_NEQ_OQ>(flx, zero);
    let my = _mm256_cmp_ps::<_CMP_NEQ_OQ>(fly, zero);
    let (sx, sy) = (_mm256_movemask_ps(mx), _mm256_movemask_ps(my));
    // Exactly one axis steps; `step` is that axis's floor on the moved lanes (all equal, ±1).
    let (moved, fl, step_px) = match (sx != 0, sy != 0) {
        (true, false) => (mx, flx, 1isize),
        (false, true) => (my, fly, nx as isize),
        _ => return false,
    };
    let mut st = [0f32; 8];
    // SAFETY: 8 f32; storeu has no alignment requirement.
    unsafe { _mm256_storeu_ps(st.as_mut_ptr(), fl) };
    let s = st[7];
    if !(s == 1.0 || s == -1.0)
        || _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(fl, _mm256_set1_ps(s))) != (sx | sy)
    {
        return false;
    }
    let off = if s > 0.0 { step_px } else { -step_px };
    let (c0, r0) = corner::<S>(a, j);
    // The moved lanes reach one column (row) further left, right, up or down.
    let grow = match (step_px == 1, s > 0.0) {
        (true, true) => [0, 1, 0, 0],
        (true, false) => [1, 0, 0, 0],
        (false, true) => [0, 0, 0, 1],
        (false, false) => [0, 0, 1, 0],
    };
    if !taps_inside::<S>((nx, ny), (c0, r0), grow) {
        return false;
    }
    let taps = Moved { off, moved };
    // SAFETY: every tap, moved or not, is inside the image (`taps_inside` with `grow`);
    // `o` holds 8 f32.
    unsafe {
        S::run8(
            base.offset(r0 * nx as isize + c0),
            nx,
            &taps,
            _mm256_sub_ps(tx, flx),
            _mm256_sub_ps(ty, fly),
            o,
        )
    };
    true
}
