use super::*;
use ndarray::Array2;

fn blob_image(ny: usize, nx: usize, dx: f64, dy: f64) -> Array2<f32> {
    let pts = [
        (20.3, 17.1, 3.0),
        (40.7, 33.2, 2.0),
        (12.0, 45.5, 4.0),
        (50.2, 10.3, 2.5),
    ];
    Array2::from_shape_fn((ny, nx), |(y, x)| {
        pts.iter()
            .map(|&(px, py, s)| {
                let rx = x as f64 - px - dx;
                let ry = y as f64 - py - dy;
                (-(rx * rx + ry * ry) / (2.0 * s * s)).exp()
            })
            .sum::<f64>() as f32
    })
}

#[test]
fn translation_sign_and_subpixel() {
    let a = blob_image(64, 72, 3.4, -2.2);
    let b = blob_image(64, 72, 0.0, 0.0);
    let t = correlate_translation(
        a.view(),
        b.view(),
        (64, 72),
        4.0,
        &FilterParams::NONE,
        Method::XCorr,
        3,
        3.0,
        -1.0,
        false,
    )
    .unwrap();
    let p = t.peaks[0];
    assert!((p.x - 3.4).abs() < 0.2, "{p:?}");
    assert!((p.y + 2.2).abs() < 0.2, "{p:?}");
    assert!(t.normalized[0] > 0.5 && t.normalized[0] <= 1.0001);
}

#[test]
fn map_statistics_are_the_same_bits_for_any_thread_count() {
    // the rows' sums are added in row order, whatever split work stealing chose
    let a = blob_image(512, 384, 3.4, -2.2);
    let b = blob_image(512, 384, 0.0, 0.0);
    let run = |n: usize| {
        crate::parallel::with_threads(Some(n), || {
            correlate_translation(
                a.view(),
                b.view(),
                (512, 384),
                4.0,
                &FilterParams::SERIALEM,
                Method::XCorr,
                5,
                3.0,
                -1.0,
                false,
            )
            .unwrap()
        })
        .unwrap()
    };
    let one = run(1);
    for n in [2, 3, 4, 2, 3] {
        let t = run(n);
        assert_eq!(
            t.stats.mean.to_bits(),
            one.stats.mean.to_bits(),
            "{n} threads"
        );
        assert_eq!(
            t.stats.std.to_bits(),
            one.stats.std.to_bits(),
            "{n} threads"
        );
        assert_eq!(t.stats.count, one.stats.count);
        // the normalisation's filtered spectrum energy, summed the same way
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&t.normalized), bits(&one.normalized), "{n} threads");
    }
}

#[test]
fn filter_shape() {
    let f = FilterParams::SERIALEM;
    assert_eq!(f.value(0.0), 0.0);
    assert!((f.value(0.2) - (1.0 - (-0.04f64 / (2.0 * 0.0009)).exp())).abs() < 1e-9);
    assert!(
        (f.value(0.3)
            - (-(0.05f64 * 0.05) / (2.0 * 0.0025)).exp() * (1.0 - (-0.09f64 / 0.0018).exp()))
        .abs()
            < 1e-9
    );
    assert_eq!(FilterParams::NONE.value(0.3), 1.0);
    let d = FilterParams {
        sigma1: -0.05,
        sigma2: 0.0,
        radius1: 0.0,
        radius2: 0.0,
    };
    assert!((d.value(0.05 * 2f64.sqrt()) - 1.0).abs() < 1e-9);
}

#[test]
fn peaks_are_sorted_and_separated() {
    let mut m = Array2::<f32>::zeros((32, 32));
    m[[5, 5]] = 3.0;
    m[[5, 6]] = 2.9;
    m[[20, 20]] = 2.0;
    m[[10, 25]] = 1.0;
    let (p, st) = find_peaks(m.view(), 5, 3.0, &Allowed::all(32, 32));
    assert_eq!(p.len(), 3);
    assert_eq!((p[0].ix, p[0].iy), (5, 5));
    assert_eq!((p[1].ix, p[1].iy), (20, 20));
    assert!(p[0].x > 5.0 && p[0].x < 5.5);
    assert_eq!(st.count, 1024);
}
