//! Wire forms of single BigQuery values: packed NUMERIC/BIGNUMERIC bytes, packed
//! DATETIME/TIME integers, their text forms, the valid ranges and the reasons a value is
//! refused. Pure functions, the client's writers; the embedded server reads the same forms
//! by its own code (`server::wire_forms` and `server::text_forms`).

use arrow::datatypes::i256;
use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, Timelike};

/// Scale of NUMERIC.
pub const NUMERIC_SCALE: i8 = 9;
/// Scale of BIGNUMERIC.
pub const BIGNUMERIC_SCALE: i8 = 38;
/// Largest unscaled NUMERIC at scale 9: 29 integer and 9 fractional nines.
pub const NUMERIC_MAX_UNSCALED: i128 = 99_999_999_999_999_999_999_999_999_999_999_999_999;
/// First valid DATE, 0001-01-01, in days since the epoch.
pub const DATE_MIN_DAYS: i32 = -719_162;
/// Last valid DATE, 9999-12-31, in days since the epoch.
pub const DATE_MAX_DAYS: i32 = 2_932_896;
/// First valid TIMESTAMP/DATETIME, 0001-01-01 00:00:00, in microseconds since the epoch.
pub const MICROS_MIN: i64 = -62_135_596_800_000_000;
/// Last valid TIMESTAMP/DATETIME, 9999-12-31 23:59:59.999999, in microseconds since the epoch.
pub const MICROS_MAX: i64 = 253_402_300_799_999_999;
/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Largest INTERVAL year-month part in months (10000 years).
pub const INTERVAL_MAX_MONTHS: i32 = 120_000;
/// Largest INTERVAL day part.
pub const INTERVAL_MAX_DAYS: i32 = 3_660_000;
/// Largest INTERVAL time part, in microseconds (87840000 hours).
pub const INTERVAL_MAX_MICROS: i64 = 87_840_000 * 3_600 * 1_000_000;

/// Why a DATE is refused: outside 0001-01-01..9999-12-31.
pub(crate) const DATE_OUT_OF_RANGE: &str = "is outside DATE's range 0001-01-01..9999-12-31";
/// Why a TIMESTAMP is refused: outside 0001-01-01..9999-12-31.
pub(crate) const TIMESTAMP_OUT_OF_RANGE: &str = "is outside TIMESTAMP's range 0001-01-01..9999-12-31";
/// Why a DATETIME is refused: outside 0001-01-01..9999-12-31.
pub(crate) const DATETIME_OUT_OF_RANGE: &str = "is outside DATETIME's range 0001-01-01..9999-12-31";
/// Why a TIME is refused: outside the day.
pub(crate) const TIME_OUT_OF_RANGE: &str = "is outside TIME's range 00:00:00..23:59:59.999999";
/// Why an INTERVAL is refused: a part beyond its range.
pub(crate) const INTERVAL_OUT_OF_RANGE: &str =
    "is outside INTERVAL's range (10000 years, 3660000 days, 87840000 hours)";

/// Why a time, timestamp or interval is refused: it has digits below the microsecond.
pub(crate) const SUB_MICROSECOND: &str = "has sub-microsecond digits; BigQuery keeps microseconds, refusing to round";
/// Why a DATE64 is refused: a time of day.
pub(crate) const DATE_WITH_TIME: &str = "has a time of day; DATE keeps only the date, refusing to drop it";
/// Why an integer is refused for FLOAT64: it has no exact double.
pub(crate) const NO_EXACT_FLOAT64: &str = "has no exact FLOAT64 (more than 53 significant bits); refusing to round";

/// Why a decimal is refused for `type_name` (NUMERIC, BIGNUMERIC): beyond its integer digits.
pub(crate) fn too_large_for(type_name: &str) -> String {
    format!("is too large for {type_name}")
}

/// Why a decimal is refused for `type_name` at `scale`: more fractional digits than it keeps.
pub(crate) fn too_many_fraction_digits(type_name: &str, scale: i8) -> String {
    format!("has more fractional digits than {type_name}'s {scale}; refusing to round")
}

/// Why a value is refused by a parameterized `type_name(P, S)` column: more integer digits
/// than P - S.
pub(crate) fn beyond_parameter_integer_digits(type_name: &str) -> String {
    format!("has more integer digits than the column's {type_name}(P, S) allows")
}

/// Why a value is refused by a parameterized `type_name(P, S)` column: more fractional digits
/// than S.
pub(crate) fn beyond_parameter_fraction_digits(type_name: &str) -> String {
    format!("has more fractional digits than the column's {type_name}(P, S) allows; refusing to round")
}

/// Largest BIGNUMERIC, unscaled at scale 38 (2^255 - 1).
pub fn bignumeric_max() -> i256 {
    i256::MAX
}

/// Two's complement little-endian bytes with redundant sign bytes removed (at least one byte).
fn minimal_le(bytes: &[u8]) -> Vec<u8> {
    let mut len = bytes.len();
    while len > 1 {
        let last = bytes[len - 1];
        let sign_of_next = bytes[len - 2] & 0x80;
        if (last == 0x00 && sign_of_next == 0) || (last == 0xff && sign_of_next != 0) {
            len -= 1;
        } else {
            break;
        }
    }
    bytes[..len].to_vec()
}

/// Packed NUMERIC: the value at scale 9 as minimal little-endian two's complement.
///
/// ```
/// // 1.5 is 1_500_000_000 at scale 9.
/// assert_eq!(datafusion_bigquery::values::pack_numeric(1_500_000_000), vec![0x00, 0x2f, 0x68, 0x59]);
/// ```
pub fn pack_numeric(unscaled: i128) -> Vec<u8> {
    minimal_le(&unscaled.to_le_bytes())
}

/// Packed BIGNUMERIC: the value at scale 38 as minimal little-endian two's complement.
pub fn pack_bignumeric(unscaled: i256) -> Vec<u8> {
    minimal_le(&unscaled.to_le_bytes())
}

/// NUMERIC (unscaled `i128` at scale 9) and BIGNUMERIC (unscaled `i256` at scale 38): their
/// ranges, parameterized digits and wire forms, for code that handles both alike.
pub(crate) trait Unscaled: Copy + PartialOrd + std::fmt::Display + Send + Sync {
    /// The BigQuery type's name.
    const TYPE_NAME: &'static str;
    /// The type's scale.
    const SCALE: i8;
    /// The reason given for a value outside the type's range (none for BIGNUMERIC, whose range
    /// is the whole of `i256`).
    const OUT_OF_RANGE: &'static str;
    /// 10^n, if it fits.
    fn pow10(n: i64) -> Option<Self>;
    /// True if the value is within the type's range.
    fn in_range(self) -> bool;
    /// The column's (P, S) limits: (10^(P - S + scale), 10^(scale - S)), if valid.
    fn digit_limits(precision: i64, scale: i64) -> Option<(Self, Self)> {
        let own = i64::from(Self::SCALE);
        Some((Self::pow10(precision - scale + own)?, Self::pow10(own - scale)?))
    }
    /// True if `|self| < limit`.
    fn below(self, limit: Self) -> bool;
    /// True if `step` divides the value.
    fn multiple_of(self, step: Self) -> bool;
    /// The packed wire form: minimal little-endian two's complement.
    fn packed(self) -> Vec<u8>;
}

impl Unscaled for i128 {
    const TYPE_NAME: &'static str = "NUMERIC";
    const SCALE: i8 = NUMERIC_SCALE;
    const OUT_OF_RANGE: &'static str = "is outside NUMERIC's range (29 integer digits)";

    fn pow10(n: i64) -> Option<Self> {
        10i128.checked_pow(u32::try_from(n).ok()?)
    }

    fn in_range(self) -> bool {
        (-NUMERIC_MAX_UNSCALED..=NUMERIC_MAX_UNSCALED).contains(&self)
    }

    fn below(self, limit: Self) -> bool {
        self.unsigned_abs() < limit.unsigned_abs()
    }

    fn multiple_of(self, step: Self) -> bool {
        self % step == 0
    }

    fn packed(self) -> Vec<u8> {
        pack_numeric(self)
    }
}

impl Unscaled for i256 {
    const TYPE_NAME: &'static str = "BIGNUMERIC";
    const SCALE: i8 = BIGNUMERIC_SCALE;
    const OUT_OF_RANGE: &'static str = "is outside BIGNUMERIC's range";

    fn pow10(n: i64) -> Option<Self> {
        i256::from_i128(10).checked_pow(u32::try_from(n).ok()?)
    }

    fn in_range(self) -> bool {
        true
    }

    fn below(self, limit: Self) -> bool {
        self < limit && self > limit.wrapping_neg()
    }

    fn multiple_of(self, step: Self) -> bool {
        self.wrapping_rem(step) == i256::ZERO
    }

    fn packed(self) -> Vec<u8> {
        pack_bignumeric(self)
    }
}

/// Formats an unscaled decimal at `scale` as text, e.g. `(-15, 1)` -> `-1.5`.
pub fn decimal_text(unscaled: impl ToString, scale: i8) -> String {
    let digits = unscaled.to_string();
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest.to_string()),
        None => ("", digits),
    };
    if scale <= 0 {
        return format!("{sign}{digits}{}", "0".repeat(scale.unsigned_abs() as usize));
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{sign}{int}.{frac}")
}

/// Splits microseconds since the epoch into a civil date-time; `None` outside chrono's range.
fn civil(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

/// Packed DATETIME from microseconds since 1970-01-01 00:00:00 (no time zone).
///
/// ```
/// // 2016-12-03 14:11:27.123456
/// let micros = 1_480_774_287_123_456;
/// assert_eq!(datafusion_bigquery::values::pack_datetime(micros), Some(141916638033338944));
/// ```
pub fn pack_datetime(micros: i64) -> Option<i64> {
    if !(MICROS_MIN..=MICROS_MAX).contains(&micros) {
        return None;
    }
    let t = civil(micros)?;
    let date_part = (i64::from(t.year()) << 26) | (i64::from(t.month()) << 22) | (i64::from(t.day()) << 17);
    let time_part = (i64::from(t.hour()) << 12) | (i64::from(t.minute()) << 6) | i64::from(t.second());
    Some(((date_part | time_part) << 20) | i64::from(t.nanosecond() / 1000))
}

/// Packed TIME from microseconds since midnight.
///
/// ```
/// // 14:11:27.123456
/// assert_eq!(datafusion_bigquery::values::pack_time(51_087_123_456), Some(60896174656));
/// ```
pub fn pack_time(micros: i64) -> Option<i64> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let seconds = micros / 1_000_000;
    let (hour, minute, second) = (seconds / 3600, (seconds / 60) % 60, seconds % 60);
    Some((((hour << 12) | (minute << 6) | second) << 20) | (micros % 1_000_000))
}

/// DATETIME text `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn datetime_text(micros: i64) -> Option<String> {
    if !(MICROS_MIN..=MICROS_MAX).contains(&micros) {
        return None;
    }
    civil(micros).map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

/// TIME text `HH:MM:SS.ffffff`.
pub fn time_text(micros: i64) -> Option<String> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return None;
    }
    let secs = u32::try_from(micros / 1_000_000).ok()?;
    let nanos = u32::try_from((micros % 1_000_000) * 1000).ok()?;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos).map(|t| t.format("%H:%M:%S%.6f").to_string())
}

/// TIMESTAMP text with picosecond precision, for columns with `timestamp_precision = 12`:
/// `YYYY-MM-DDTHH:MM:SS.ffffffffffff+00:00` (the form Google's Java client writes), from
/// nanoseconds since the epoch, the finest unit Arrow holds (so the last three digits are 0).
///
/// ```
/// use datafusion_bigquery::values::timestamp_picos_text;
/// assert_eq!(timestamp_picos_text(1_500_000_001).as_deref(), Some("1970-01-01T00:00:01.500000001000+00:00"));
/// assert_eq!(timestamp_picos_text(-1).as_deref(), Some("1969-12-31T23:59:59.999999999000+00:00"));
/// ```
pub fn timestamp_picos_text(nanos: i64) -> Option<String> {
    let t = DateTime::from_timestamp_nanos(nanos).naive_utc();
    Some(format!("{}{:03}+00:00", t.format("%Y-%m-%dT%H:%M:%S%.9f"), 0))
}

/// INTERVAL text in BigQuery's canonical form `[-]Y-M [-]D [-]H:M:S[.ffffff]` from Arrow's
/// (months, days, nanoseconds); `None` if a part is outside INTERVAL's range or the
/// nanoseconds are not whole microseconds.
///
/// ```
/// use datafusion_bigquery::values::interval_text;
/// assert_eq!(interval_text(14, 3, 14_706_789_000_000).as_deref(), Some("1-2 3 4:5:6.789"));
/// assert_eq!(interval_text(-14, -3, -1_000).as_deref(), Some("-1-2 -3 -0:0:0.000001"));
/// assert_eq!(interval_text(0, 0, 1), None);
/// ```
pub fn interval_text(months: i32, days: i32, nanos: i64) -> Option<String> {
    if nanos % 1_000 != 0
        || months.unsigned_abs() > INTERVAL_MAX_MONTHS.unsigned_abs()
        || days.unsigned_abs() > INTERVAL_MAX_DAYS.unsigned_abs()
        || (nanos / 1_000).unsigned_abs() > INTERVAL_MAX_MICROS.unsigned_abs()
    {
        return None;
    }
    let sign = |negative: bool| if negative { "-" } else { "" };
    let ym = months.unsigned_abs();
    let micros = (nanos / 1_000).unsigned_abs();
    let seconds = micros / 1_000_000;
    let fraction = match micros % 1_000_000 {
        0 => String::new(),
        f => format!(".{f:06}").trim_end_matches('0').to_string(),
    };
    Some(format!(
        "{}{}-{} {days} {}{}:{}:{}{fraction}",
        sign(months < 0),
        ym / 12,
        ym % 12,
        sign(nanos < 0),
        seconds / 3_600,
        (seconds / 60) % 60,
        seconds % 60,
    ))
}

/// Parses INTERVAL text `[-]Y-M [-]D [-]H:M:S[.f]` (the canonical form, with months below
/// 12, minutes and seconds below 60 and at most 6 fractional digits) into (months, days,
/// nanoseconds); `None` if malformed or out of range.
pub fn parse_interval_text(text: &str) -> Option<(i32, i32, i64)> {
    let mut parts = text.split_whitespace();
    let (ym, d, hms) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let unsigned = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    fn split_sign(s: &str) -> (bool, &str) {
        match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s.strip_prefix('+').unwrap_or(s)),
        }
    }
    let (negative_ym, ym) = split_sign(ym);
    let (years, month) = ym.split_once('-')?;
    let (years, month) = (unsigned(years)?, unsigned(month)?);
    let months = i64::try_from(years.checked_mul(12)?.checked_add(month)?).ok()?;
    let (negative_d, d) = split_sign(d);
    let days = i64::try_from(unsigned(d)?).ok()?;
    let (negative_t, hms) = split_sign(hms);
    let mut fields = hms.splitn(3, ':');
    let (h, m, s) = (fields.next()?, fields.next()?, fields.next()?);
    let (s, fraction) = s.split_once('.').unwrap_or((s, ""));
    if month >= 12 || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m, s) = (unsigned(h)?, unsigned(m)?, unsigned(s)?);
    if m >= 60 || s >= 60 {
        return None;
    }
    let fraction_micros: u64 = format!("{fraction:0<6}").parse().ok()?;
    let micros = h
        .checked_mul(3_600)?
        .checked_add(m * 60 + s)?
        .checked_mul(1_000_000)?
        .checked_add(fraction_micros)?;
    let micros = i64::try_from(micros).ok()?;
    let apply = |negative: bool, v: i64| if negative { -v } else { v };
    let (months, days, micros) = (
        apply(negative_ym, months),
        apply(negative_d, days),
        apply(negative_t, micros),
    );
    let nanos = micros.checked_mul(1_000)?;
    let months = i32::try_from(months).ok()?;
    let days = i32::try_from(days).ok()?;
    interval_text(months, days, nanos)?;
    Some((months, days, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn numeric_vectors() {
        assert_eq!(hex(&pack_numeric(1_500_000_000)), "00 2f 68 59");
        assert_eq!(hex(&pack_numeric(-1_500_000_000)), "00 d1 97 a6");
        assert_eq!(hex(&pack_numeric(0)), "00");
        // Minimal: as few bytes as the sign needs.
        for (v, len) in [
            (0, 1),
            (1, 1),
            (-1, 1),
            (127, 1),
            (128, 2),
            (-128, 1),
            (-129, 2),
            (255, 2),
        ] {
            assert_eq!(pack_numeric(v).len(), len, "{v}");
        }
        assert_eq!(pack_numeric(NUMERIC_MAX_UNSCALED).len(), 16);
        assert_eq!(pack_numeric(128), vec![0x80, 0x00]);
        assert_eq!(pack_numeric(-128), vec![0x80]);
    }

    #[test]
    fn bignumeric_vector() {
        let one_and_half = i256::from_i128(15).wrapping_mul(i256::from_i128(10).wrapping_pow(37));
        // 1.5 x 10^38 is 0x70d8f2fc87ca26b70e4f336000000000: 16 bytes, the top one 0x70.
        assert_eq!(
            hex(&pack_bignumeric(one_and_half)),
            "00 00 00 00 60 33 4f 0e b7 26 ca 87 fc f2 d8 70"
        );
        assert_eq!(pack_bignumeric(i256::MINUS_ONE), vec![0xff]);
        assert_eq!(pack_bignumeric(i256::MAX).len(), 32);
    }

    #[test]
    fn datetime_and_time_vectors() {
        let micros = NaiveDate::from_ymd_opt(2016, 12, 3)
            .unwrap()
            .and_hms_micro_opt(14, 11, 27, 123_456)
            .unwrap()
            .and_utc()
            .timestamp_micros();
        assert_eq!(pack_datetime(micros), Some(141_916_638_033_338_944));
        let t = ((14 * 60 + 11) * 60 + 27) * 1_000_000 + 123_456;
        assert_eq!(pack_time(t), Some(60_896_174_656));
        assert_eq!(datetime_text(micros).unwrap(), "2016-12-03 14:11:27.123456");
        assert_eq!(time_text(t).unwrap(), "14:11:27.123456");
        assert_eq!(pack_datetime(MICROS_MAX + 1), None);
        assert!(pack_datetime(MICROS_MIN).is_some());
        assert_eq!(pack_time(MICROS_PER_DAY), None);
    }

    #[test]
    fn range_constants_match_the_calendar() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let first = NaiveDate::from_ymd_opt(1, 1, 1).unwrap();
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        assert_eq!((first - epoch).num_days(), i64::from(DATE_MIN_DAYS));
        assert_eq!((last - epoch).num_days(), i64::from(DATE_MAX_DAYS));
        assert_eq!(
            first.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros(),
            MICROS_MIN
        );
        assert_eq!(
            last.and_hms_micro_opt(23, 59, 59, 999_999)
                .unwrap()
                .and_utc()
                .timestamp_micros(),
            MICROS_MAX
        );
    }

    #[test]
    fn interval_text_round_trips() {
        let max_nanos = INTERVAL_MAX_MICROS.checked_mul(1_000);
        assert_eq!(max_nanos, None, "the time part's range exceeds i64 nanoseconds");
        for (months, days, nanos, text) in [
            (0, 0, 0, "0-0 0 0:0:0"),
            (14, 3, 14_706_789_000_000, "1-2 3 4:5:6.789"),
            (-1, 0, -90_000_000_000_000, "-0-1 0 -25:0:0"),
            (120_000, -3_660_000, 1_000, "10000-0 -3660000 0:0:0.000001"),
            (
                -120_000,
                3_660_000,
                i64::MAX / 1000 * 1000,
                "-10000-0 3660000 2562047:47:16.854775",
            ),
        ] {
            assert_eq!(interval_text(months, days, nanos).as_deref(), Some(text));
            assert_eq!(parse_interval_text(text), Some((months, days, nanos)), "{text}");
        }
        assert_eq!(interval_text(120_001, 0, 0), None);
        assert_eq!(interval_text(0, -3_660_001, 0), None);
        assert_eq!(interval_text(0, 0, 999), None);
        for bad in [
            "",
            "1-2 3",
            "1-12 0 0:0:0",
            "0-0 0 0:60:0",
            "0-0 0 0:0:0.1234567",
            "a-0 0 0:0:0",
            "0-0 0 0:0",
        ] {
            assert_eq!(parse_interval_text(bad), None, "{bad}");
        }
        assert_eq!(
            parse_interval_text("+1-0 -2 1:02:03.5"),
            Some((12, -2, 3_723_500_000_000))
        );
    }

    #[test]
    fn decimal_text_round_trips() {
        assert_eq!(decimal_text(-15, 1), "-1.5");
        assert_eq!(decimal_text(5, 9), "0.000000005");
        assert_eq!(decimal_text(7, 0), "7");
    }
}
