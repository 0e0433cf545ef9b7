//! The data dictionary's coded values, as they are written in `cohort.csv`.

use std::fmt;
use std::str::FromStr;

/// A value that is not one of a dictionary type's levels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of {expected}")]
pub struct UnknownLevel {
    /// The allowed levels, joined by `|`.
    pub expected: &'static str,
}

macro_rules! dictionary_enum {
    ($(#[$meta:meta])* $name:ident, $levels:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every level, in dictionary order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Every level as written in `cohort.csv`, in dictionary order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The level as written in `cohort.csv`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownLevel;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownLevel { expected: $levels }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

dictionary_enum!(
    /// Administrative sex (FHIR `Patient.gender`).
    Sex, "male|female|other|unknown" {
        /// Male.
        Male => "male",
        /// Female.
        Female => "female",
        /// Other.
        Other => "other",
        /// Not known or not recorded.
        Unknown => "unknown",
    }
);

dictionary_enum!(
    /// A clinical finding that is present, absent or not recorded.
    YesNoUnknown, "yes|no|unknown" {
        /// Present.
        Yes => "yes",
        /// Absent.
        No => "no",
        /// Not recorded.
        Unknown => "unknown",
    }
);

dictionary_enum!(
    /// A myositis antibody result.
    AntibodyStatus, "positive|negative|indeterminate|not_tested" {
        /// Positive.
        Positive => "positive",
        /// Negative.
        Negative => "negative",
        /// Equivocal or indeterminate.
        Indeterminate => "indeterminate",
        /// No result in the record.
        NotTested => "not_tested",
    }
);

dictionary_enum!(
    /// Thigh muscle MRI findings.
    MriThigh, "edema|fatty|edema_and_fatty|normal|unknown" {
        /// Oedema only.
        Edema => "edema",
        /// Fatty infiltration only.
        Fatty => "fatty",
        /// Both.
        EdemaAndFatty => "edema_and_fatty",
        /// Neither.
        Normal => "normal",
        /// Not recorded.
        Unknown => "unknown",
    }
);

dictionary_enum!(
    /// Outcome at last follow-up.
    Outcome, "complete_remission|partial_remission|no_remission|unknown" {
        /// Complete remission.
        CompleteRemission => "complete_remission",
        /// Partial remission.
        PartialRemission => "partial_remission",
        /// No clinical remission.
        NoRemission => "no_remission",
        /// Not recorded.
        Unknown => "unknown",
    }
);

impl AntibodyStatus {
    /// Which of two results a patient-level summary keeps: ever positive wins,
    /// then negative, then indeterminate.
    pub fn rank(self) -> u8 {
        match self {
            AntibodyStatus::Positive => 3,
            AntibodyStatus::Negative => 2,
            AntibodyStatus::Indeterminate => 1,
            AntibodyStatus::NotTested => 0,
        }
    }
}

impl MriThigh {
    /// Combines the two MRI findings (each present, absent or not recorded).
    pub fn from_parts(edema: Option<bool>, fatty: Option<bool>) -> Self {
        match (edema, fatty) {
            (Some(true), Some(true)) => MriThigh::EdemaAndFatty,
            (Some(true), _) => MriThigh::Edema,
            (_, Some(true)) => MriThigh::Fatty,
            (Some(false), Some(false)) => MriThigh::Normal,
            _ => MriThigh::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_text() {
        for s in Sex::ALL {
            assert_eq!(s.as_str().parse::<Sex>().unwrap(), *s);
        }
        for o in Outcome::ALL {
            assert_eq!(o.to_string().parse::<Outcome>().unwrap(), *o);
        }
        assert!("M".parse::<Sex>().is_err());
    }

    #[test]
    fn mri_parts_combine() {
        assert_eq!(MriThigh::from_parts(Some(true), Some(false)), MriThigh::Edema);
        assert_eq!(MriThigh::from_parts(Some(true), Some(true)), MriThigh::EdemaAndFatty);
        assert_eq!(MriThigh::from_parts(None, Some(true)), MriThigh::Fatty);
        assert_eq!(MriThigh::from_parts(Some(false), Some(false)), MriThigh::Normal);
        assert_eq!(MriThigh::from_parts(Some(false), None), MriThigh::Unknown);
    }
}
