//! The embedded server's reading of the text wire forms (`bigquery.wire_encoding = text` and
//! picosecond TIMESTAMPs): decimals, DATETIME, TIME and TIMESTAMP text, written from the
//! protocol's description apart from the client's writers (in `values`), so that a mistake in
//! one is not mirrored by the other. Public (hidden) for the conformance tests, which read
//! bqemulator's answers with them.

use arrow::datatypes::i256;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Parses decimal text (`-12.5`, `3`, `.25`, `1e3` not accepted) into an unscaled i128 at
/// `scale`; `None` if malformed or if digits past `scale` are non-zero.
pub fn parse_decimal_i128(text: &str, scale: i8) -> Option<i128> {
    parse_decimal_i256(text, scale)?.to_i128()
}

/// Like [`parse_decimal_i128`] for i256 (the one parser: the i128 form narrows its result).
pub fn parse_decimal_i256(text: &str, scale: i8) -> Option<i256> {
    let (negative, int, frac) = split_decimal(text)?;
    let scale = usize::try_from(scale).ok()?;
    if frac.len() > scale && frac[scale..].bytes().any(|b| b != b'0') {
        return None;
    }
    let frac = &frac[..frac.len().min(scale)];
    let ten = i256::from_i128(10);
    let mut value = i256::ZERO;
    let sign = if negative { -1 } else { 1 };
    for b in int
        .bytes()
        .chain(frac.bytes())
        .chain(std::iter::repeat_n(b'0', scale - frac.len()))
    {
        value = value
            .checked_mul(ten)?
            .checked_add(i256::from_i128(sign * i128::from(b - b'0')))?;
    }
    Some(value)
}

fn split_decimal(text: &str) -> Option<(bool, &str, &str)> {
    let text = text.trim();
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    Some((negative, int, frac))
}

/// Parses DATETIME text (space or `T` separator, optional fraction) into microseconds.
pub fn parse_datetime_text(text: &str) -> Option<i64> {
    let text = text.trim();
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ]
    .iter()
    .find_map(|f| {
        NaiveDateTime::parse_from_str(text, f).ok().or_else(|| {
            NaiveDate::parse_from_str(text, f)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
    })
    .map(|t| t.and_utc().timestamp_micros())
}

/// Parses picosecond TIMESTAMP text (`T` or space, up to 12 fractional digits, `Z` or a
/// `+HH:MM` offset) into seconds since the epoch and picoseconds within the second.
///
/// ```
/// use datafusion_bigquery::server::text_forms::parse_timestamp_picos_text;
/// assert_eq!(parse_timestamp_picos_text("1970-01-01T00:00:01.000000000123+00:00"), Some((1, 123)));
/// assert_eq!(parse_timestamp_picos_text("1970-01-01 01:00:00.5+01:00"), Some((0, 500_000_000_000)));
/// assert_eq!(parse_timestamp_picos_text("1970-01-01T00:00:00.1234567890123Z"), None);
/// ```
pub fn parse_timestamp_picos_text(text: &str) -> Option<(i64, u64)> {
    let text = text.trim();
    let (body, offset_seconds) = if let Some(body) = text.strip_suffix('Z') {
        (body, 0)
    } else {
        let at = text.rfind(['+', '-']).filter(|&i| i >= 19)?;
        let (body, offset) = text.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let (hours, minutes) = offset[1..].split_once(':')?;
        let (hours, minutes): (i64, i64) = (hours.parse().ok()?, minutes.parse().ok()?);
        (body, sign * (hours * 3600 + minutes * 60))
    };
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (body, ""),
    };
    if fraction.len() > 12 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let civil = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(whole, f).ok())?;
    let picos = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<u64>().ok()? * 10u64.pow(12 - fraction.len() as u32)
    };
    Some((civil.and_utc().timestamp() - offset_seconds, picos))
}

/// Parses TIME text into microseconds since midnight.
pub fn parse_time_text(text: &str) -> Option<i64> {
    let t = NaiveTime::parse_from_str(text.trim(), "%H:%M:%S%.f").ok()?;
    Some(i64::from(t.num_seconds_from_midnight()) * 1_000_000 + i64::from(t.nanosecond() / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{datetime_text, decimal_text, time_text};

    #[test]
    fn read_what_the_client_writes() {
        let micros = NaiveDate::from_ymd_opt(2016, 12, 3)
            .and_then(|d| d.and_hms_micro_opt(14, 11, 27, 123_456))
            .map(|t| t.and_utc().timestamp_micros())
            .expect("a date");
        let t = ((14 * 60 + 11) * 60 + 27) * 1_000_000 + 123_456;
        assert_eq!(parse_datetime_text("2016-12-03T14:11:27.123456"), Some(micros));
        assert_eq!(
            datetime_text(micros).and_then(|s| parse_datetime_text(&s)),
            Some(micros)
        );
        assert_eq!(parse_time_text("14:11:27.123456"), Some(t));
        assert_eq!(time_text(t).and_then(|s| parse_time_text(&s)), Some(t));
    }

    #[test]
    fn decimals() {
        for (text, scale, expected) in [
            ("1.5", 9, Some(1_500_000_000)),
            ("-0.25", 2, Some(-25)),
            ("3", 2, Some(300)),
            (".5", 1, Some(5)),
            ("1.230", 2, Some(123)),
            ("1.234", 2, None),
            ("1e3", 0, None),
            ("", 0, None),
            ("-", 0, None),
        ] {
            assert_eq!(parse_decimal_i128(text, scale), expected, "{text}");
        }
        assert_eq!(parse_decimal_i256(&decimal_text(i256::MIN, 38), 38), Some(i256::MIN));
        assert_eq!(parse_decimal_i256(&decimal_text(i256::MAX, 38), 38), Some(i256::MAX));
        assert_eq!(
            parse_decimal_i256("-1.5", 38),
            Some(i256::from_i128(-15).wrapping_mul(i256::from_i128(10).wrapping_pow(37)))
        );
    }
}
