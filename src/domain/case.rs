//! One row of `cohort.csv`: the registry's data dictionary.

use super::date::FhirDate;
use super::values::{AntibodyStatus, MriThigh, Outcome, Sex, YesNoUnknown};

/// The columns of `cohort.csv`, in order. README.md documents each.
pub const COLUMNS: &[&str] = &[
    "patient_id",
    "sex",
    "birth_date",
    "onset_date",
    "onset_age_years",
    "diagnosis_code",
    "ck_peak_u_per_l",
    "ck_peak_date",
    "ck_count",
    "anti_hmgcr",
    "anti_srp",
    "proximal_weakness",
    "rash",
    "emg_myopathic",
    "biopsy_necrosis",
    "mri_thigh",
    "glucocorticoid",
    "methotrexate",
    "rituximab",
    "ivig",
    "outcome",
];

/// One IMNM case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRow {
    /// Patient resource id.
    pub patient_id: String,
    /// Administrative sex.
    pub sex: Sex,
    /// Birth date as recorded (may be partial).
    pub birth_date: Option<FhirDate>,
    /// Onset date of the IMNM diagnosis.
    pub onset_date: Option<FhirDate>,
    /// Onset age in completed years.
    pub onset_age_years: Option<u32>,
    /// The qualifying diagnosis code, `system|code`.
    pub diagnosis_code: String,
    /// Highest CK in U/L.
    pub ck_peak_u_per_l: Option<f64>,
    /// Date of the highest CK.
    pub ck_peak_date: Option<FhirDate>,
    /// Number of CK results counted.
    pub ck_count: u32,
    /// Anti-HMGCR.
    pub anti_hmgcr: AntibodyStatus,
    /// Anti-SRP.
    pub anti_srp: AntibodyStatus,
    /// Proximal weakness.
    pub proximal_weakness: YesNoUnknown,
    /// Rash.
    pub rash: YesNoUnknown,
    /// Myopathic EMG.
    pub emg_myopathic: YesNoUnknown,
    /// Necrosis on biopsy.
    pub biopsy_necrosis: YesNoUnknown,
    /// Thigh MRI.
    pub mri_thigh: MriThigh,
    /// Glucocorticoid exposure.
    pub glucocorticoid: bool,
    /// Methotrexate exposure.
    pub methotrexate: bool,
    /// Rituximab exposure.
    pub rituximab: bool,
    /// IVIG exposure.
    pub ivig: bool,
    /// Outcome.
    pub outcome: Outcome,
}

impl CaseRow {
    /// A row with every value unknown, for `patient_id`.
    pub fn empty(patient_id: impl Into<String>) -> Self {
        Self {
            patient_id: patient_id.into(),
            sex: Sex::Unknown,
            birth_date: None,
            onset_date: None,
            onset_age_years: None,
            diagnosis_code: String::new(),
            ck_peak_u_per_l: None,
            ck_peak_date: None,
            ck_count: 0,
            anti_hmgcr: AntibodyStatus::NotTested,
            anti_srp: AntibodyStatus::NotTested,
            proximal_weakness: YesNoUnknown::Unknown,
            rash: YesNoUnknown::Unknown,
            emg_myopathic: YesNoUnknown::Unknown,
            biopsy_necrosis: YesNoUnknown::Unknown,
            mri_thigh: MriThigh::Unknown,
            glucocorticoid: false,
            methotrexate: false,
            rituximab: false,
            ivig: false,
            outcome: Outcome::Unknown,
        }
    }

    /// The row's cells as written in `cohort.csv`, in [`COLUMNS`] order.
    pub fn cells(&self) -> Vec<String> {
        let opt = |d: Option<FhirDate>| d.map(|d| d.to_string()).unwrap_or_default();
        let yn = |b: bool| if b { "yes" } else { "no" }.to_string();
        vec![
            self.patient_id.clone(),
            self.sex.to_string(),
            opt(self.birth_date),
            opt(self.onset_date),
            self.onset_age_years.map(|a| a.to_string()).unwrap_or_default(),
            self.diagnosis_code.clone(),
            self.ck_peak_u_per_l.map(format_number).unwrap_or_default(),
            opt(self.ck_peak_date),
            self.ck_count.to_string(),
            self.anti_hmgcr.to_string(),
            self.anti_srp.to_string(),
            self.proximal_weakness.to_string(),
            self.rash.to_string(),
            self.emg_myopathic.to_string(),
            self.biopsy_necrosis.to_string(),
            self.mri_thigh.to_string(),
            yn(self.glucocorticoid),
            yn(self.methotrexate),
            yn(self.rituximab),
            yn(self.ivig),
            self.outcome.to_string(),
        ]
    }
}

/// Formats a number without a trailing `.0`, rounded to 3 decimals.
pub fn format_number(x: f64) -> String {
    let rounded = (x * 1000.0).round() / 1000.0;
    let s = format!("{rounded:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_without_noise() {
        assert_eq!(format_number(3870.0), "3870");
        assert_eq!(format_number(64.5 * 60.0), "3870");
        assert_eq!(format_number(3988.5), "3988.5");
        assert_eq!(format_number(0.1 + 0.2), "0.3");
    }

    #[test]
    fn row_has_one_cell_per_column() {
        assert_eq!(CaseRow::empty("p1").cells().len(), COLUMNS.len());
    }
}
