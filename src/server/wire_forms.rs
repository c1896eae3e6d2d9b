//! The embedded server's reading of the packed wire forms, written from the protocol's
//! description and pinned by its test vectors, apart from the client's writers (in `values`),
//! so that a mistake in one is not mirrored by the other.
//!
//! - NUMERIC / BIGNUMERIC: the unscaled value (scale 9 / 38) in little-endian two's
//!   complement, in as few bytes as the sign needs.
//! - DATETIME: `(year << 26 | month << 22 | day << 17 | hour << 12 | minute << 6 | second) << 20
//!   | microseconds`.
//! - TIME: `(hour << 12 | minute << 6 | second) << 20 | microseconds`.

use arrow::datatypes::i256;
use chrono::{NaiveDate, NaiveTime};

/// A little-endian two's complement integer of at most `N` bytes, widened to `N` bytes.
fn widened<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    let last = *bytes.last()?;
    if bytes.len() > N {
        return None;
    }
    let sign = if last >= 0x80 { 0xFF } else { 0x00 };
    let mut out = [sign; N];
    out[..bytes.len()].copy_from_slice(bytes);
    Some(out)
}

/// Packed NUMERIC bytes as the unscaled value at scale 9.
pub(crate) fn numeric(bytes: &[u8]) -> Option<i128> {
    widened::<16>(bytes).map(i128::from_le_bytes)
}

/// Packed BIGNUMERIC bytes as the unscaled value at scale 38.
pub(crate) fn bignumeric(bytes: &[u8]) -> Option<i256> {
    widened::<32>(bytes).map(i256::from_le_bytes)
}

/// The bits `[from, from + width)` of `value`.
fn bits(value: i64, from: u32, width: u32) -> u32 {
    ((value >> from) & ((1 << width) - 1)) as u32
}

/// Packed DATETIME as microseconds since 1970-01-01 00:00:00; `None` for a date or time that
/// does not exist.
pub(crate) fn datetime(packed: i64) -> Option<i64> {
    let micros = bits(packed, 0, 20);
    let (second, minute, hour) = (bits(packed, 20, 6), bits(packed, 26, 6), bits(packed, 32, 5));
    let (day, month) = (bits(packed, 37, 5), bits(packed, 42, 4));
    let year = i32::try_from(packed >> 46).ok()?;
    let date = NaiveDate::from_ymd_opt(year, month, day)?;
    let time = NaiveTime::from_hms_micro_opt(hour, minute, second, micros).filter(|_| micros < 1_000_000)?;
    Some(date.and_time(time).and_utc().timestamp_micros())
}

/// Packed TIME as microseconds since midnight; `None` for a time that does not exist.
pub(crate) fn time(packed: i64) -> Option<i64> {
    if packed >> 37 != 0 {
        return None;
    }
    let micros = bits(packed, 0, 20);
    let (second, minute, hour) = (bits(packed, 20, 6), bits(packed, 26, 6), bits(packed, 32, 5));
    if micros >= 1_000_000 || second >= 60 || minute >= 60 || hour >= 24 {
        return None;
    }
    Some(((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second)) * 1_000_000 + i64::from(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        text.split(' ').map(|b| u8::from_str_radix(b, 16).unwrap()).collect()
    }

    #[test]
    fn the_protocols_vectors() {
        assert_eq!(numeric(&hex("00 2f 68 59")), Some(1_500_000_000));
        assert_eq!(numeric(&hex("00 d1 97 a6")), Some(-1_500_000_000));
        assert_eq!(numeric(&hex("00")), Some(0));
        // 1.5 at scale 38 (0x70d8f2fc87ca26b70e4f336000000000). The protocol's notes list it
        // with a fifth leading 00 byte, which reads as 384.
        let one_and_a_half = i256::from_i128(15).wrapping_mul(i256::from_i128(10).wrapping_pow(37));
        assert_eq!(
            bignumeric(&hex("00 00 00 00 60 33 4f 0e b7 26 ca 87 fc f2 d8 70")),
            Some(one_and_a_half)
        );
        // 2016-12-03 14:11:27.123456
        assert_eq!(datetime(141_916_638_033_338_944), Some(1_480_774_287_123_456));
        // 14:11:27.123456
        assert_eq!(time(60_896_174_656), Some(51_087_123_456));
    }

    #[test]
    fn the_clients_packed_forms_read_back() {
        use crate::values::{pack_bignumeric, pack_numeric};
        for v in [
            0,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            1_500_000_000,
            crate::values::NUMERIC_MAX_UNSCALED,
        ] {
            assert_eq!(numeric(&pack_numeric(v)), Some(v), "{v}");
            assert_eq!(numeric(&pack_numeric(-v)), Some(-v), "{}", -v);
        }
        for v in [i256::MAX, i256::MIN, i256::ZERO, i256::MINUS_ONE] {
            assert_eq!(bignumeric(&pack_bignumeric(v)), Some(v));
        }
    }

    #[test]
    fn what_does_not_exist_is_refused() {
        assert_eq!(numeric(&[]), None);
        assert_eq!(numeric(&[0; 17]), None);
        let packed = |year: i64, month: i64, day: i64| (year << 26 | month << 22 | day << 17) << 20;
        assert!(datetime(packed(2023, 2, 28)).is_some());
        assert_eq!(datetime(packed(2023, 2, 29)), None, "no 29 February in 2023");
        assert_eq!(datetime(packed(2023, 13, 1)), None);
        assert_eq!(time((24 << 12) << 20), None);
        assert_eq!(
            time(((23 << 12) | (59 << 6) | 59) << 20 | 999_999),
            Some(86_399_999_999)
        );
        assert_eq!(time(1_000_000), None, "a million microseconds");
    }
}
