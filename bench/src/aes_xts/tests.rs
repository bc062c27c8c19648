use super::*;
use aes::cipher::KeyInit;
use aes::Aes128;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// IEEE 1619-2007 XTS-AES-128 test vectors 1 and 2.
fn check(key1: [u8; 16], key2: [u8; 16], unit: u64, plain: [u8; 32], expected: &str) {
    let mut xts = Xts::new(Aes128::new(&key1.into()), Aes128::new(&key2.into()));
    let mut bytes = plain;
    xts.encrypt(unit, &mut bytes);
    assert_eq!(bytes.to_vec(), hex(expected));
}

#[test]
fn ieee_1619_vector_1() {
    check(
        [0; 16],
        [0; 16],
        0,
        [0; 32],
        "917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e",
    );
}

#[test]
fn ieee_1619_vector_2() {
    check(
        [0x11; 16],
        [0x22; 16],
        0x33_3333_3333,
        [0x44; 32],
        "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0",
    );
}

#[test]
fn alpha_carries_into_the_reduction_polynomial() {
    assert_eq!(mul_alpha(1), 2);
    assert_eq!(mul_alpha(1 << 127), 0x87);
}
