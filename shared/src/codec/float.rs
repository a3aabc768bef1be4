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
    // Rust's `{:e}` gives the shortest round-trip digits, as `zend_dtoa` mode 0 does.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
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
