//! A person's demographics (the personal data the registry holds) and their validation.
//! They only ever reach storage sealed (see `sealed`).

use serde::{Deserialize, Serialize};

/// Sex as recorded at registration (Kenya's 2019 census recognises intersex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    Female,
    Male,
    Intersex,
}

/// Names, date of birth, sex and place of birth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demographics {
    pub given_name: String,
    pub family_name: String,
    pub other_names: Vec<String>,
    /// `YYYY-MM-DD`, validated.
    pub date_of_birth: String,
    pub sex: Sex,
    pub place_of_birth: String,
}

/// A field that breaks a rule: the field's name and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self { field: field.into(), reason: reason.into() }
    }
}

/// The longest name or place accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// The most other names accepted.
pub const MAX_OTHER_NAMES: usize = 8;

/// Checks a name-like text: present, not too long, no control characters.
pub fn check_text(field: &str, value: &str) -> Result<(), FieldError> {
    if value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(FieldError::new(field, format!("longer than {MAX_NAME_CHARS} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "contains a control character"));
    }
    Ok(())
}

/// Parses `YYYY-MM-DD` strictly into a calendar date.
pub fn parse_date(field: &str, value: &str) -> Result<time::Date, FieldError> {
    let bad = || FieldError::new(field, format!("{value:?} is not a date of the form YYYY-MM-DD"));
    let bytes = value.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<u16, FieldError> {
        let part = &value[range];
        if !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let month = time::Month::try_from(u8::try_from(month).map_err(|_| bad())?)
        .map_err(|_| FieldError::new(field, format!("{value:?} has no month {month}")))?;
    time::Date::from_calendar_date(i32::from(year), month, u8::try_from(day).map_err(|_| bad())?)
        .map_err(|_| FieldError::new(field, format!("{value:?} is not a day of the calendar")))
}

/// Checks a date is a real day between 1880-01-01 and `today`.
pub fn check_past_date(field: &str, value: &str, today: time::Date) -> Result<time::Date, FieldError> {
    let date = parse_date(field, value)?;
    if date > today {
        return Err(FieldError::new(field, format!("{value} is in the future")));
    }
    if date.year() < 1880 {
        return Err(FieldError::new(field, format!("{value} is before 1880")));
    }
    Ok(date)
}

impl Demographics {
    /// Every rule, field by field; the first broken one is named.
    pub fn validate(&self, today: time::Date) -> Result<(), FieldError> {
        check_text("demographics.given_name", &self.given_name)?;
        check_text("demographics.family_name", &self.family_name)?;
        if self.other_names.len() > MAX_OTHER_NAMES {
            return Err(FieldError::new("demographics.other_names", format!("more than {MAX_OTHER_NAMES} names")));
        }
        for (i, name) in self.other_names.iter().enumerate() {
            check_text(&format!("demographics.other_names[{i}]"), name)?;
        }
        check_past_date("demographics.date_of_birth", &self.date_of_birth, today)?;
        check_text("demographics.place_of_birth", &self.place_of_birth)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> time::Date {
        time::Date::from_calendar_date(2026, time::Month::November, 22).unwrap()
    }

    fn wanjiru() -> Demographics {
        Demographics {
            given_name: "Wanjiru".into(),
            family_name: "Kamau".into(),
            other_names: vec!["Njeri".into()],
            date_of_birth: "1990-02-28".into(),
            sex: Sex::Female,
            place_of_birth: "Nyeri".into(),
        }
    }

    #[test]
    fn valid_demographics_pass() {
        assert_eq!(wanjiru().validate(today()), Ok(()));
    }

    #[test]
    fn each_bad_field_is_named() {
        type Change = Box<dyn Fn(&mut Demographics)>;
        let cases: Vec<(Change, &str, &str)> = vec![
            (Box::new(|d| d.given_name = "  ".into()), "demographics.given_name", "empty"),
            (Box::new(|d| d.family_name = "x".repeat(101)), "demographics.family_name", "longer"),
            (
                Box::new(|d| d.other_names = vec!["ok".into(), "a\u{0}b".into()]),
                "demographics.other_names[1]",
                "control",
            ),
            (Box::new(|d| d.date_of_birth = "1990-02-30".into()), "demographics.date_of_birth", "not a day"),
            (Box::new(|d| d.date_of_birth = "1990-13-01".into()), "demographics.date_of_birth", "no month"),
            (Box::new(|d| d.date_of_birth = "28/02/1990".into()), "demographics.date_of_birth", "YYYY-MM-DD"),
            (Box::new(|d| d.date_of_birth = "2027-01-01".into()), "demographics.date_of_birth", "future"),
            (Box::new(|d| d.date_of_birth = "1879-12-31".into()), "demographics.date_of_birth", "1880"),
            (Box::new(|d| d.place_of_birth = String::new()), "demographics.place_of_birth", "empty"),
        ];
        for (change, field, reason) in cases {
            let mut d = wanjiru();
            change(&mut d);
            let err = d.validate(today()).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.reason.contains(reason), "{err}");
        }
    }

    #[test]
    fn leap_days_follow_the_calendar() {
        assert!(parse_date("d", "2000-02-29").is_ok());
        assert!(parse_date("d", "1900-02-29").is_err());
    }
}
