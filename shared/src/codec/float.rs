//! PHP's text for floats in `serialize()`, both ways.

/// The text `serialize()` writes for a float with PHP >= 7.1's default
/// `serialize_precision = -1`: the shortest digits that read back as the same
/// float, laid out as PHP's `zend_gcvt(value, 17, '.', 'E')` does:
/// `0.1`, `1` (no `.0`), `-0`, `0.0001`, `1.0E-5`, `1.0E+25`,
/// `1.2345678901234568E+17`, `INF`, `-INF`, `NAN`.
pub(super) fn format(value: f64) -> String {
    if value.is_nan() {
        return "NAN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "INF" } else { "-INF" }.into();
    }
    let (digits, exponent) = shortest_digits(value.abs());
    // zend_gcvt's `decpt`: where the decimal point goes, counted from the first digit.
    let decpt = exponent + 1;
    let mut out = String::with_capacity(digits.len() + 8);
    if value.is_sign_negative() {
        out.push('-');
    }
    let digit = |i: usize| char::from(digits[i]);
    if if decpt < 0 { decpt < -3 } else { decpt > 17 } {
        // d.dddE+x, with at least one digit after the point.
        out.push(digit(0));
        out.push('.');
        if digits.len() == 1 {
            out.push('0');
        } else {
            digits[1..].iter().for_each(|&d| out.push(char::from(d)));
        }
        out.push('E');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&exponent.unsigned_abs().to_string());
    } else if decpt < 0 {
        out.push_str("0.");
        (decpt..0).for_each(|_| out.push('0'));
        digits.iter().for_each(|&d| out.push(char::from(d)));
    } else {
        let decpt = decpt as usize;
        (0..decpt).for_each(|i| out.push(if i < digits.len() { digit(i) } else { '0' }));
        if digits.len() > decpt {
            if decpt == 0 {
                out.push('0');
            }
            out.push('.');
            digits[decpt..].iter().for_each(|&d| out.push(char::from(d)));
        }
    }
    out
}

/// The shortest digits that read back as `value` (finite, not negative) and the
/// decimal exponent of the first: `(b"15", -1)` for 0.15. As PHP's `zend_dtoa`
/// (mode 0) gives them: among the shortest strings the one closest to the
/// value, and when two are exactly as close, the one with an even last digit.
fn shortest_digits(value: f64) -> (Vec<u8>, i32) {
    // Rust's `{:e}` gives the shortest, closest digits too, but settles exact
    // ties upwards: 100305426194927.625 is `...927.63` here, `...927.62` in PHP.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mut digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if let Some(even) = even_neighbour(value, &digits, exponent) {
        digits = even;
    }
    (digits, exponent)
}

/// When `value` lies exactly halfway between `digits` and a neighbour with the
/// same number of digits, the one of the two with an even last digit, if that
/// is not `digits` and reads back as `value`.
fn even_neighbour(value: f64, digits: &[u8], exponent: i32) -> Option<Vec<u8>> {
    let last = *digits.last()? - b'0';
    if last.is_multiple_of(2) || digits.len() > 17 {
        return None;
    }
    let number: u64 = digits.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0'));
    // The halfway points below and above, as t * 10^scale with t odd (ends in 5).
    let scale = exponent - digits.len() as i32;
    let (mantissa, binary_exponent) = odd_mantissa(value)?;
    for (halfway, neighbour) in [(number * 10 - 5, number - 1), (number * 10 + 5, number + 1)] {
        if is_exactly(mantissa, binary_exponent, halfway, scale) {
            let mut even = format!("{neighbour:0width$}", width = digits.len()).into_bytes();
            if even.len() != digits.len() {
                return None;
            }
            let text = format!("{}e{}", String::from_utf8_lossy(&even), scale + 1);
            if text.parse::<f64>().ok()? != value {
                return None;
            }
            while even.len() > 1 && even.last() == Some(&b'0') {
                even.pop();
            }
            return Some(even);
        }
    }
    None
}

/// `value` (finite, positive) as `m * 2^e` with `m` odd.
fn odd_mantissa(value: f64) -> Option<(u64, i32)> {
    if value == 0.0 {
        return None;
    }
    let bits = value.to_bits();
    let (exponent_bits, fraction) = (((bits >> 52) & 0x7ff) as i32, bits & ((1 << 52) - 1));
    let (mantissa, exponent) = match exponent_bits {
        0 => (fraction, -1074),
        _ => (fraction | 1 << 52, exponent_bits - 1075),
    };
    let shift = mantissa.trailing_zeros();
    Some((mantissa >> shift, exponent + shift as i32))
}

/// Whether `m * 2^e` (m odd) is exactly `t * 10^s` (t odd). Both sides' odd
/// parts and powers of two must match: `e == s` and `m == t * 5^s` (s >= 0) or
/// `m * 5^-s == t` (s < 0).
fn is_exactly(m: u64, e: i32, t: u64, s: i32) -> bool {
    if e != s {
        return false;
    }
    let power = |n: u32| 5u128.checked_pow(n);
    if s >= 0 {
        power(s as u32).and_then(|p| p.checked_mul(u128::from(t))) == Some(u128::from(m))
    } else {
        power(s.unsigned_abs()).and_then(|p| p.checked_mul(u128::from(m))) == Some(u128::from(t))
    }
}

/// The float in a `d:` item's text, accepting what PHP's `unserialize()`
/// accepts: `NAN`, `INF`, `-INF`, or `[+-]?` digits with an optional `.` and
/// fraction and an optional `[eE][+-]?<digits>` exponent (`1`, `-.5`, `5.`,
/// `1.0E+25`, and the 17-digit forms older PHP wrote). `None` for anything else.
pub(super) fn parse(text: &[u8]) -> Option<f64> {
    match text {
        b"NAN" => return Some(f64::NAN),
        b"INF" => return Some(f64::INFINITY),
        b"-INF" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    let unsigned = text.strip_prefix(b"+").or_else(|| text.strip_prefix(b"-")).unwrap_or(text);
    let (number, exponent) = match unsigned.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    let number_ok = match number.iter().position(|&b| b == b'.') {
        Some(at) => {
            let (whole, fraction) = (&number[..at], &number[at + 1..]);
            digits(whole) && digits(fraction) && whole.len() + fraction.len() > 0
        }
        None => !number.is_empty() && digits(number),
    };
    let exponent_ok = exponent.is_none_or(|exponent| {
        let exponent = exponent.strip_prefix(b"+").or_else(|| exponent.strip_prefix(b"-")).unwrap_or(exponent);
        !exponent.is_empty() && digits(exponent)
    });
    if !(number_ok && exponent_ok) {
        return None;
    }
    // The grammar is checked; Rust's parser reads the same numbers, correctly rounded.
    std::str::from_utf8(text).ok()?.parse().ok()
}
