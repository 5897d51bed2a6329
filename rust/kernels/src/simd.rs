//! The instruction set a kernel runs on, as a value.
//!
//! Following Cykooz/fast_image_resize (`src/cpu_extensions.rs`): the CPU is probed once
//! ([`Isa::detect`], cached), the chosen [`Isa`] is passed down to every kernel that has a SIMD
//! path, and tests run each kernel on every instruction set the machine has
//! ([`Isa::available`]) and compare the result with [`Isa::Scalar`].
//!
//! A kernel given an [`Isa`] the CPU lacks must not execute its instructions: kernels call
//! [`Isa::effective`] (or check [`Isa::is_supported`]) before entering a `#[target_feature]`
//! function, so a forced `Isa::Avx2Fma` on an older CPU quietly runs the scalar path.

use std::sync::OnceLock;

/// An instruction set with a kernel path of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable Rust; the compiler may still auto-vectorise for the baseline target.
    Scalar,
    /// x86-64 AVX2 with FMA (Haswell, 2013, and later; every AMD Zen).
    Avx2Fma,
}

impl Isa {
    /// Every instruction set, scalar first.
    pub const ALL: [Isa; 2] = [Isa::Scalar, Isa::Avx2Fma];

    /// The best instruction set this CPU supports, probed once per process.
    pub fn detect() -> Isa {
        static BEST: OnceLock<Isa> = OnceLock::new();
        *BEST.get_or_init(|| {
            if Isa::Avx2Fma.is_supported() {
                Isa::Avx2Fma
            } else {
                Isa::Scalar
            }
        })
    }

    /// Whether this CPU can execute the instruction set.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Avx2Fma => avx2_fma_supported(),
        }
    }

    /// `self` if the CPU supports it, else [`Isa::Scalar`]: what a kernel actually runs.
    pub fn effective(self) -> Isa {
        if self.is_supported() {
            self
        } else {
            Isa::Scalar
        }
    }

    /// The instruction sets this CPU supports, scalar first: what tests loop over.
    pub fn available() -> Vec<Isa> {
        Isa::ALL
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }

    /// A short lowercase name (`"scalar"`, `"avx2_fma"`), for messages and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2Fma => "avx2_fma",
        }
    }
}

impl Default for Isa {
    /// The detected instruction set.
    fn default() -> Self {
        Isa::detect()
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_fma_supported() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_fma_supported() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalar_is_always_available_and_first() {
        let isas = Isa::available();
        assert_eq!(isas[0], Isa::Scalar);
        assert!(isas.contains(&Isa::detect()));
    }

    #[test]
    fn effective_never_returns_an_unsupported_set() {
        for isa in Isa::ALL {
            assert!(isa.effective().is_supported());
        }
        assert_eq!(Isa::Scalar.effective(), Isa::Scalar);
    }

    #[test]
    fn detect_is_the_best_supported() {
        let best = Isa::detect();
        assert_eq!(best == Isa::Avx2Fma, Isa::Avx2Fma.is_supported());
        assert_eq!(Isa::default(), best);
    }

    #[test]
    fn names_are_distinct() {
        assert_ne!(Isa::Scalar.name(), Isa::Avx2Fma.name());
    }
}
