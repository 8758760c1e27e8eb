//! `s:dateTime` as .NET writes it, kept exactly: no offset, `Z` or `±hh:mm`,
//! and 0 to 7 fractional digits (the 100 ns ticks of a .NET `DateTime`).

use std::fmt;
use std::str::FromStr;

/// The offset part of a dateTime, in the form it was written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Offset {
    /// No offset (.NET `DateTimeKind.Unspecified` or `Local` written bare).
    #[default]
    None,
    /// `Z`.
    Utc,
    /// `+hh:mm` or `-hh:mm`, in minutes east of UTC.
    Minutes(i16),
    /// `-00:00`, which ISO 8601 gives its own meaning (UTC, local offset
    /// unknown); kept apart from `+00:00` so it is written back as sent.
    MinusZero,
}

/// An `xs:dateTime` as the service wrote it; written back byte for byte.
///
/// ```
/// use ecgridos::wire::DateTime;
/// let t: DateTime = "2026-11-01T10:00:00.1234567+01:30".parse().unwrap();
/// assert_eq!(t.to_string(), "2026-11-01T10:00:00.1234567+01:30");
/// assert!("0001-01-01T00:00:00".parse::<DateTime>().unwrap().is_never());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DateTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    /// The fractional digits as an integer (`.050` is 50 with 3 digits).
    fraction: u32,
    digits: u8,
    offset: Offset,
}

impl Default for DateTime {
    /// `0001-01-01T00:00:00`, the .NET default the service sends for "never".
    fn default() -> Self {
        DateTime {
            year: 1,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            fraction: 0,
            digits: 0,
            offset: Offset::None,
        }
    }
}

/// Why a text is not an `xs:dateTime` this type reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DateTimeError(&'static str);

impl fmt::Display for DateTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an ISO 8601 dateTime: {}", self.0)
    }
}

impl std::error::Error for DateTimeError {}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn number(s: &[u8], what: &'static str) -> Result<u32, DateTimeError> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return Err(DateTimeError(what));
    }
    Ok(s.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
}

fn small(s: &[u8], what: &'static str, max: u32) -> Result<u8, DateTimeError> {
    let n = number(s, what)?;
    if n > max {
        return Err(DateTimeError(what));
    }
    u8::try_from(n).map_err(|_| DateTimeError(what))
}

impl DateTime {
    /// The date: year, month (1-12), day (1-31).
    pub fn date(&self) -> (u16, u8, u8) {
        (self.year, self.month, self.day)
    }

    /// The time of day: hour, minute, second.
    pub fn time(&self) -> (u8, u8, u8) {
        (self.hour, self.minute, self.second)
    }

    /// The fraction of the second in 100 ns ticks (0 to 9,999,999).
    pub fn ticks(&self) -> u32 {
        self.fraction * 10u32.pow(u32::from(7 - self.digits))
    }

    /// The offset, in the form it was written.
    pub fn offset(&self) -> Offset {
        self.offset
    }

    /// True for `0001-01-01T00:00:00` (any fraction and offset zero): the .NET
    /// default that the service sends for "never".
    pub fn is_never(&self) -> bool {
        self.date() == (1, 1, 1) && self.time() == (0, 0, 0) && self.fraction == 0
    }

    /// Whole seconds since 1970-01-01T00:00:00Z (proleptic Gregorian; the
    /// fraction is dropped). A dateTime written without an offset counts as
    /// UTC.
    ///
    /// ```
    /// use ecgridos::wire::DateTime;
    /// let t: DateTime = "2026-11-18T12:06:40+01:00".parse().unwrap();
    /// assert_eq!(t.unix_seconds(), 1_795_000_000);
    /// ```
    pub fn unix_seconds(&self) -> i64 {
        let days = days_from_civil(
            i64::from(self.year),
            i64::from(self.month),
            i64::from(self.day),
        );
        let offset = match self.offset {
            Offset::Minutes(m) => i64::from(m) * 60,
            _ => 0,
        };
        days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
            - offset
    }

    /// The UTC dateTime (`Z`, whole seconds) `seconds` after
    /// 1970-01-01T00:00:00Z; `None` outside years 1 to 9999.
    ///
    /// ```
    /// use ecgridos::wire::DateTime;
    /// let t = DateTime::from_unix_seconds(1_795_000_000).unwrap();
    /// assert_eq!(t.to_string(), "2026-11-18T11:06:40Z");
    /// ```
    pub fn from_unix_seconds(seconds: i64) -> Option<DateTime> {
        let days = seconds.div_euclid(86_400);
        let rest = seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Some(DateTime {
            year: u16::try_from(year)
                .ok()
                .filter(|y| (1..=9999).contains(y))?,
            month: u8::try_from(month).ok()?,
            day: u8::try_from(day).ok()?,
            hour: u8::try_from(rest / 3600).ok()?,
            minute: u8::try_from(rest / 60 % 60).ok()?,
            second: u8::try_from(rest % 60).ok()?,
            fraction: 0,
            digits: 0,
            offset: Offset::Utc,
        })
    }
}

impl FromStr for DateTime {
    type Err = DateTimeError;

    fn from_str(text: &str) -> Result<Self, DateTimeError> {
        let s = text.trim().as_bytes();
        if s.len() < 19 || s[4] != b'-' || s[7] != b'-' || s[10] != b'T' {
            return Err(DateTimeError("expected YYYY-MM-DDThh:mm:ss"));
        }
        if s[13] != b':' || s[16] != b':' {
            return Err(DateTimeError("expected hh:mm:ss"));
        }
        let year = number(&s[0..4], "year")?;
        let year = u16::try_from(year).map_err(|_| DateTimeError("year"))?;
        if year == 0 {
            return Err(DateTimeError("year 0000"));
        }
        let month = small(&s[5..7], "month", 12)?;
        if month == 0 {
            return Err(DateTimeError("month"));
        }
        let day = small(&s[8..10], "day", 31)?;
        if day == 0 || day > days_in_month(year, month) {
            return Err(DateTimeError("day"));
        }
        let hour = small(&s[11..13], "hour", 23)?;
        let minute = small(&s[14..16], "minute", 59)?;
        let second = small(&s[17..19], "second", 59)?;
        let mut rest = &s[19..];
        let (mut fraction, mut digits) = (0, 0);
        if let Some(after) = rest.strip_prefix(b".") {
            let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
            if n == 0 || n > 7 {
                return Err(DateTimeError("1 to 7 fractional digits"));
            }
            fraction = number(&after[..n], "fraction")?;
            digits = n as u8;
            rest = &after[n..];
        }
        let offset = match rest {
            b"" => Offset::None,
            b"Z" => Offset::Utc,
            [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
                let hours = small(&[*h1, *h2], "offset hours", 14)?;
                let minutes = small(&[*m1, *m2], "offset minutes", 59)?;
                let total = i16::from(hours) * 60 + i16::from(minutes);
                match (*sign, total) {
                    (b'-', 0) => Offset::MinusZero,
                    (b'-', _) => Offset::Minutes(-total),
                    _ => Offset::Minutes(total),
                }
            }
            _ => return Err(DateTimeError("offset is Z or +hh:mm")),
        };
        Ok(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            fraction,
            digits,
            offset,
        })
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.digits > 0 {
            write!(
                f,
                ".{:0width$}",
                self.fraction,
                width = usize::from(self.digits)
            )?;
        }
        match self.offset {
            Offset::None => Ok(()),
            Offset::Utc => f.write_str("Z"),
            Offset::MinusZero => f.write_str("-00:00"),
            Offset::Minutes(m) => {
                let sign = if m < 0 { '-' } else { '+' };
                let m = m.unsigned_abs();
                write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_dotnet_writes_and_writes_it_back() {
        for text in [
            "0001-01-01T00:00:00",
            "2026-11-01T10:00:00Z",
            "2026-11-01T10:00:00.1Z",
            "2026-11-01T10:00:00.1234567",
            "2024-02-29T23:59:59.0000000-05:00",
            "9999-12-31T23:59:59.9999999+14:00",
            "2026-01-01T00:00:00.050+00:00",
            "2026-01-01T00:00:00-00:00",
        ] {
            let t: DateTime = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        let t: DateTime = "2026-01-01T00:00:00.05".parse().unwrap();
        assert_eq!(t.ticks(), 500_000);
        assert!(DateTime::default().is_never());
        assert_eq!(DateTime::default().to_string(), "0001-01-01T00:00:00");
    }

    #[test]
    fn refuses_what_is_not_a_datetime() {
        for text in [
            "",
            "2026-11-01",
            "2026-13-01T00:00:00",
            "2023-02-29T00:00:00",
            "2026-11-01T24:00:00",
            "2026-11-01T10:00:00.12345678",
            "2026-11-01T10:00:00.",
            "2026-11-01T10:00:00+1:00",
            "2026-11-01T10:00:00 Z",
            "0000-01-01T00:00:00",
            "２０２６-11-01T10:00:00",
        ] {
            assert!(text.parse::<DateTime>().is_err(), "{text}");
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian (year, month, day) of a count of days since
/// 1970-01-01 (Howard Hinnant's civil-from-days).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// `t` as RFC 3339 in UTC with milliseconds (`2026-11-23T12:00:00.123Z`).
pub(crate) fn rfc3339_utc(t: std::time::SystemTime) -> String {
    let since = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod rfc3339_tests {
    use super::rfc3339_utc;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn civil_days_both_ways() {
        use super::{civil_from_days, days_from_civil};
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1, 1, 1), -719_162);
        for days in [-719_162, -1, 0, 59, 11_016, 11_017, 20_780, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn utc_instants_format_as_rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_435_200_123);
        assert_eq!(rfc3339_utc(t), "2026-11-23T12:00:00.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_utc(leap), "2000-02-29T00:00:00.000Z");
    }
}
