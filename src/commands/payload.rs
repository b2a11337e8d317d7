//! Command values to downlink payloads.
//!
//! Bool: one byte, 0 or 1. Int: big-endian two's complement in the fewest of 1, 2, 4 or 8
//! bytes that hold the value. Float: IEEE 754 single precision, big-endian (what LoRaWAN
//! device firmware reads). String: its UTF-8 bytes. Whether the value and the payload are
//! acceptable is decided in `validate`, before and after encoding.

use crate::model::Value;

/// The largest application payload LoRaWAN carries (DR with the largest payload, EU868).
pub const MAX_PAYLOAD_BYTES: usize = 242;

/// The payload bytes of a value.
pub fn encode_payload(value: &Value) -> Vec<u8> {
    match value {
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Int(i) => {
            let bytes = i.to_be_bytes();
            let width = if i8::try_from(*i).is_ok() {
                1
            } else if i16::try_from(*i).is_ok() {
                2
            } else if i32::try_from(*i).is_ok() {
                4
            } else {
                8
            };
            bytes[8 - width..].to_vec()
        }
        Value::Float(f) => (*f as f32).to_be_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_in_the_documented_shapes() {
        assert_eq!(encode_payload(&Value::Int(1)), vec![1]);
        assert_eq!(encode_payload(&Value::Int(-2)), vec![0xfe]);
        assert_eq!(encode_payload(&Value::Int(300)), vec![0x01, 0x2c]);
        assert_eq!(encode_payload(&Value::Int(-300)), vec![0xfe, 0xd4]);
        assert_eq!(encode_payload(&Value::Int(70_000)), vec![0, 1, 0x11, 0x70]);
        assert_eq!(
            encode_payload(&Value::Int(1 << 40)),
            vec![0, 0, 1, 0, 0, 0, 0, 0]
        );
        assert_eq!(encode_payload(&Value::Bool(true)), vec![1]);
        assert_eq!(encode_payload(&Value::Bool(false)), vec![0]);
        assert_eq!(
            encode_payload(&Value::Float(1.5)),
            1.5f32.to_be_bytes().to_vec()
        );
        assert_eq!(encode_payload(&Value::String("on".into())), b"on".to_vec());
    }
}
