//! Compact binary encoding of values, as stored in the `history` and `latest` tables.
//!
//! History is by far the biggest table (one row per sample, months of it), so a value is a tag
//! byte and the fewest payload bytes that restore it exactly:
//!
//! ```text
//! tag: bit 7 = origin (0 uplink, 1 aggregate), bits 0..=3 = kind, bits 4..=6 = 0
//! kind 1 Float32  4 bytes LE   (an f64 that survives a round trip through f32, bit for bit)
//! kind 2 Float64  8 bytes LE
//! kind 3 Int      0..=8 bytes LE two's complement, sign-extended (0 bytes = 0)
//! kind 4 False / kind 5 True, no payload
//! kind 6 String   UTF-8, the rest of the row (redb stores the row length), at most
//!                 MAX_STRING_BYTES
//! ```
//!
//! A latest row is `source_time i64 LE | received_time i64 LE | value`. Decoding checks every
//! length and tag and returns an error for anything else: a corrupt row never panics.

use crate::model::{SampleOrigin, Timestamp, Value};

/// Longest string value kept, in bytes. Longer strings are cut at a character boundary: a
/// LoRaWAN payload is at most 242 bytes, so anything longer is a decoder gone wrong, and one
/// runaway value must not bloat every history page it lands on.
pub const MAX_STRING_BYTES: usize = 4096;

const ORIGIN_AGGREGATE: u8 = 0x80;
const RESERVED_BITS: u8 = 0x70;
const KIND_MASK: u8 = 0x0f;

const KIND_FLOAT32: u8 = 1;
const KIND_FLOAT64: u8 = 2;
const KIND_INT: u8 = 3;
const KIND_FALSE: u8 = 4;
const KIND_TRUE: u8 = 5;
const KIND_STRING: u8 = 6;

const TIME_BYTES: usize = 8;
/// Bytes of a latest row before its value.
const LATEST_HEADER_BYTES: usize = 2 * TIME_BYTES;

/// Why a stored row could not be decoded (the caller adds the table, key and path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn error(message: impl Into<String>) -> DecodeError {
    DecodeError(message.into())
}

/// Appends the encoding of `value` to `out`. Returns `true` when a string had to be cut to
/// [`MAX_STRING_BYTES`].
pub fn encode_value(value: &Value, origin: SampleOrigin, out: &mut Vec<u8>) -> bool {
    let origin_bit = match origin {
        SampleOrigin::Uplink => 0,
        SampleOrigin::Aggregate => ORIGIN_AGGREGATE,
    };
    match value {
        Value::Float(v) => {
            let narrow = *v as f32;
            if f64::from(narrow).to_bits() == v.to_bits() {
                out.push(origin_bit | KIND_FLOAT32);
                out.extend_from_slice(&narrow.to_le_bytes());
            } else {
                out.push(origin_bit | KIND_FLOAT64);
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        Value::Int(v) => {
            out.push(origin_bit | KIND_INT);
            let bytes = v.to_le_bytes();
            out.extend_from_slice(&bytes[..int_width(*v)]);
        }
        Value::Bool(false) => out.push(origin_bit | KIND_FALSE),
        Value::Bool(true) => out.push(origin_bit | KIND_TRUE),
        Value::String(s) => {
            out.push(origin_bit | KIND_STRING);
            let kept = truncate_to_char_boundary(s, MAX_STRING_BYTES);
            out.extend_from_slice(kept.as_bytes());
            return kept.len() < s.len();
        }
    }
    false
}

/// Decodes a value written by [`encode_value`].
pub fn decode_value(bytes: &[u8]) -> Result<(Value, SampleOrigin), DecodeError> {
    let (&tag, payload) = bytes.split_first().ok_or_else(|| error("empty value"))?;
    if tag & RESERVED_BITS != 0 {
        return Err(error(format!("unknown value tag {tag:#04x}")));
    }
    let origin = if tag & ORIGIN_AGGREGATE != 0 {
        SampleOrigin::Aggregate
    } else {
        SampleOrigin::Uplink
    };
    let value = match tag & KIND_MASK {
        KIND_FLOAT32 => Value::Float(f64::from(f32::from_le_bytes(exact(payload, "float32")?))),
        KIND_FLOAT64 => Value::Float(f64::from_le_bytes(exact(payload, "float64")?)),
        KIND_INT => {
            if payload.len() > 8 {
                return Err(error(format!("int of {} bytes", payload.len())));
            }
            let fill = match payload.last() {
                Some(&b) if b & 0x80 != 0 => 0xff,
                _ => 0x00,
            };
            let mut full = [fill; 8];
            full[..payload.len()].copy_from_slice(payload);
            Value::Int(i64::from_le_bytes(full))
        }
        KIND_FALSE | KIND_TRUE if !payload.is_empty() => {
            return Err(error("bool with a payload"));
        }
        KIND_FALSE => Value::Bool(false),
        KIND_TRUE => Value::Bool(true),
        KIND_STRING => {
            if payload.len() > MAX_STRING_BYTES {
                return Err(error(format!("string of {} bytes", payload.len())));
            }
            let text = std::str::from_utf8(payload).map_err(|e| error(format!("string: {e}")))?;
            Value::String(text.to_string())
        }
        kind => return Err(error(format!("unknown value kind {kind}"))),
    };
    Ok((value, origin))
}

/// The stored form of the newest sample of one series.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestRow {
    pub source_time: Timestamp,
    pub received_time: Timestamp,
    pub value: Value,
    pub origin: SampleOrigin,
}

/// Encodes a latest row; returns `true` when a string was cut (see [`encode_value`]).
pub fn encode_latest(
    source_time: Timestamp,
    received_time: Timestamp,
    value: &Value,
    origin: SampleOrigin,
    out: &mut Vec<u8>,
) -> bool {
    out.extend_from_slice(&source_time.as_micros().to_le_bytes());
    out.extend_from_slice(&received_time.as_micros().to_le_bytes());
    encode_value(value, origin, out)
}

pub fn decode_latest(bytes: &[u8]) -> Result<LatestRow, DecodeError> {
    let source_time = latest_source_time(bytes)?;
    let received = bytes
        .get(TIME_BYTES..LATEST_HEADER_BYTES)
        .ok_or_else(|| error("latest row too short"))?;
    let received_time = Timestamp(i64::from_le_bytes(exact(received, "received time")?));
    let (value, origin) = decode_value(&bytes[LATEST_HEADER_BYTES..])?;
    Ok(LatestRow {
        source_time,
        received_time,
        value,
        origin,
    })
}

/// The source time of a latest row, without decoding its value (the append compares it).
pub fn latest_source_time(bytes: &[u8]) -> Result<Timestamp, DecodeError> {
    if bytes.len() <= LATEST_HEADER_BYTES {
        return Err(error(format!("latest row of {} bytes", bytes.len())));
    }
    Ok(Timestamp(i64::from_le_bytes(exact(
        &bytes[..TIME_BYTES],
        "source time",
    )?)))
}

/// `s` cut to at most `max` bytes without splitting a character.
pub fn truncate_to_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The bytes needed to restore `v` by sign extension.
fn int_width(v: i64) -> usize {
    let mut width = 8;
    while width > 0 {
        let shift = 64 - 8 * (width - 1) as u32;
        // Fewer bytes suffice when sign-extending the shorter form gives back `v`.
        let shorter = if width == 1 { 0 } else { (v << shift) >> shift };
        if shorter != v {
            break;
        }
        width -= 1;
    }
    width
}

fn exact<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], DecodeError> {
    bytes
        .try_into()
        .map_err(|_| error(format!("{what} of {} bytes, expected {N}", bytes.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: Value, origin: SampleOrigin) -> usize {
        let mut out = Vec::new();
        assert!(!encode_value(&value, origin, &mut out));
        assert_eq!(decode_value(&out), Ok((value, origin)));
        out.len()
    }

    #[test]
    fn ints_use_the_fewest_bytes_and_round_trip() {
        for (v, len) in [
            (0i64, 1),
            (1, 2),
            (-1, 2),
            (127, 2),
            (128, 3),
            (-128, 2),
            (-129, 3),
            (i64::from(i32::MAX), 5),
            (i64::MAX, 9),
            (i64::MIN, 9),
        ] {
            assert_eq!(round_trip(Value::Int(v), SampleOrigin::Uplink), len, "{v}");
        }
        for shift in 0..64 {
            for v in [
                1i64 << shift,
                (1i64 << shift).wrapping_neg(),
                (1i64 << shift).wrapping_sub(1),
            ] {
                round_trip(Value::Int(v), SampleOrigin::Aggregate);
            }
        }
    }

    #[test]
    fn floats_keep_every_bit() {
        assert_eq!(round_trip(Value::Float(21.5), SampleOrigin::Uplink), 5);
        assert_eq!(round_trip(Value::Float(0.1), SampleOrigin::Uplink), 9);
        for v in [
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            f64::EPSILON,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            5e-324,
        ] {
            let mut out = Vec::new();
            encode_value(&Value::Float(v), SampleOrigin::Uplink, &mut out);
            let (Value::Float(back), _) = decode_value(&out).unwrap() else {
                panic!("not a float")
            };
            assert_eq!(back.to_bits(), v.to_bits());
        }
        let mut out = Vec::new();
        encode_value(&Value::Float(f64::NAN), SampleOrigin::Uplink, &mut out);
        assert!(matches!(decode_value(&out), Ok((Value::Float(v), _)) if v.is_nan()));
    }

    #[test]
    fn long_strings_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_STRING_BYTES); // 2 bytes each
        let mut out = Vec::new();
        assert!(encode_value(
            &Value::String(long),
            SampleOrigin::Uplink,
            &mut out
        ));
        let (Value::String(kept), _) = decode_value(&out).unwrap() else {
            panic!("not a string")
        };
        assert_eq!(kept.len(), MAX_STRING_BYTES);
        let odd = format!("a{}", "é".repeat(MAX_STRING_BYTES));
        assert_eq!(
            truncate_to_char_boundary(&odd, MAX_STRING_BYTES).len(),
            MAX_STRING_BYTES - 1
        );
    }

    #[test]
    fn corrupt_rows_are_errors() {
        for bad in [
            &[][..],
            &[0x00],
            &[0x07],
            &[0x10 | KIND_INT],
            &[KIND_FLOAT32, 1, 2],
            &[KIND_FLOAT64, 1, 2, 3, 4],
            &[KIND_INT, 1, 2, 3, 4, 5, 6, 7, 8, 9],
            &[KIND_TRUE, 1],
            &[KIND_STRING, 0xff, 0xfe],
        ] {
            assert!(decode_value(bad).is_err(), "{bad:?}");
        }
        assert!(decode_latest(&[0; 16]).is_err());
        assert!(decode_latest(&[1, 2, 3]).is_err());
    }

    #[test]
    fn latest_rows_round_trip() {
        let mut out = Vec::new();
        encode_latest(
            Timestamp(-5),
            Timestamp(i64::MAX),
            &Value::String("ünï".into()),
            SampleOrigin::Aggregate,
            &mut out,
        );
        assert_eq!(latest_source_time(&out), Ok(Timestamp(-5)));
        assert_eq!(
            decode_latest(&out),
            Ok(LatestRow {
                source_time: Timestamp(-5),
                received_time: Timestamp(i64::MAX),
                value: Value::String("ünï".into()),
                origin: SampleOrigin::Aggregate,
            })
        );
    }
}
