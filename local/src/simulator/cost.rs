//! What a DynamoDB request costs, by DynamoDB's rules, and where each number
//! comes from.
//!
//! | rule | number from |
//! |---|---|
//! | read: item size rounded up to 4 KB, 1 RCU each (strongly consistent), half for eventually consistent | upstream `ConsumedCapacity` |
//! | GetItem of a missing item: 1 RCU strong, 0.5 eventually consistent | upstream |
//! | write: item size rounded up to 1 KB, 1 WCU each, the larger of the item before and after | upstream |
//! | failed conditional Put/Update/DeleteItem: the existing item's size in 1 KB units, 1 WCU when there is none | computed here: DynamoDB (and the emulator) return no `ConsumedCapacity` with the error; the simulator asks for the old item (`ReturnValuesOnConditionCheckFailure: ALL_OLD`, on `ConditionExpression` writes; a legacy `Expected` failure is charged 1) and sizes it by DynamoDB's size rules ([`value_size`]) |
//! | transactions: twice the single-item cost, per item | upstream |
//! | Scan/Query: the bytes scanned (not returned: before the filter, whatever the projection), summed over the page, rounded up to 4 KB once | upstream |
//! | BatchWriteItem: each item as its own write; BatchGetItem: each item as its own read | upstream |
//! | a cancelled transaction (`TransactionCanceledException`) | not charged: DynamoDB does not document it |
//! | an answer without `ConsumedCapacity` (an upstream that does not report it) | the request's minimum: 0.5/1 RCU per read item, 1 WCU per written item, 2 per transaction item |
//!
//! Every upstream number is checked against DynamoDB's documented figures by
//! `local/tests/simulator.rs` (the `capacity_*` tests), so an upstream that gets
//! one wrong fails there.

use serde_json::Value;

use super::capacity::Access;

/// The tables a request uses and the least each can be charged, known before it runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Demand {
    pub(crate) access: Access,
    /// Each table with its minimum charge, in request order, no repeats.
    pub(crate) tables: Vec<(String, f64)>,
    /// TransactWriteItems/TransactGetItems: throttled as a cancelled transaction.
    pub(crate) transaction: bool,
}

/// Whether `op` answers with `ConsumedCapacity` when asked.
pub(crate) fn reports_capacity(op: &str) -> bool {
    matches!(
        op,
        "GetItem"
            | "PutItem"
            | "UpdateItem"
            | "DeleteItem"
            | "Query"
            | "Scan"
            | "BatchGetItem"
            | "BatchWriteItem"
            | "TransactGetItems"
            | "TransactWriteItems"
    )
}

/// Whether `op` is a single-item write that may carry a condition.
pub(crate) fn is_conditional_write(op: &str) -> bool {
    matches!(op, "PutItem" | "UpdateItem" | "DeleteItem")
}

fn read_minimum(consistent: bool) -> f64 {
    if consistent {
        1.0
    } else {
        0.5
    }
}

fn consistent(body: &Value) -> bool {
    body.get("ConsistentRead").and_then(Value::as_bool).unwrap_or(false)
}

fn add(tables: &mut Vec<(String, f64)>, table: &str, units: f64) {
    match tables.iter_mut().find(|(name, _)| name == table) {
        Some((_, total)) => *total += units,
        None => tables.push((table.to_string(), units)),
    }
}

/// The capacity a data-plane request needs; `None` for control-plane requests
/// (CreateTable, DescribeTable, ...) and PartiQL, which are not metered.
pub(crate) fn demand(op: &str, body: &Value) -> Option<Demand> {
    let table = || body.get("TableName").and_then(Value::as_str).map(str::to_string);
    let single = |access, units| table().map(|name| Demand { access, tables: vec![(name, units)], transaction: false });
    match op {
        "GetItem" | "Query" | "Scan" => single(Access::Read, read_minimum(consistent(body))),
        "PutItem" | "UpdateItem" | "DeleteItem" => single(Access::Write, 1.0),
        "BatchGetItem" => {
            let mut tables = Vec::new();
            for (name, request) in body.get("RequestItems")?.as_object()? {
                let keys = request.get("Keys").and_then(Value::as_array).map_or(0, Vec::len);
                add(&mut tables, name, keys as f64 * read_minimum(consistent(request)));
            }
            Some(Demand { access: Access::Read, tables, transaction: false })
        }
        "BatchWriteItem" => {
            let mut tables = Vec::new();
            for (name, requests) in body.get("RequestItems")?.as_object()? {
                add(&mut tables, name, requests.as_array().map_or(0, Vec::len) as f64);
            }
            Some(Demand { access: Access::Write, tables, transaction: false })
        }
        "TransactGetItems" | "TransactWriteItems" => {
            let access = if op == "TransactGetItems" { Access::Read } else { Access::Write };
            let mut tables = Vec::new();
            for name in transaction_tables(body) {
                add(&mut tables, &name, 2.0);
            }
            Some(Demand { access, tables, transaction: true })
        }
        _ => None,
    }
}

/// The table of each action of a transaction, in order.
pub(crate) fn transaction_tables(body: &Value) -> Vec<String> {
    body.get("TransactItems")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_object()?.values().next()?.get("TableName")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The `ConsumedCapacity` of an answer, per table: one object for single-table
/// operations, a list for batches and transactions.
pub(crate) fn consumed(answer: &Value) -> Option<Vec<(String, f64)>> {
    let entry = |c: &Value| Some((c.get("TableName")?.as_str()?.to_string(), c.get("CapacityUnits")?.as_f64()?));
    match answer.get("ConsumedCapacity")? {
        Value::Array(list) => Some(list.iter().filter_map(entry).collect()),
        single => entry(single).map(|e| vec![e]),
    }
}

/// Write capacity units for an item of `bytes`: 1 per KB, rounded up, at least 1.
pub fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// An item's size by DynamoDB's rules, from its wire form (`{"name": {"S": ...}}`):
/// each attribute's name in UTF-8 bytes plus its value's size ([`value_size`]).
pub fn item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// A value's size by DynamoDB's rules: strings in UTF-8 bytes; binary in raw
/// bytes; numbers by significant digits ([`number_size`]); booleans and null
/// 1 byte; sets the sum of their elements; lists and maps 3 bytes, plus 1 byte
/// per element, plus (maps) each key's bytes, plus the elements' sizes.
pub fn value_size(value: &Value) -> usize {
    fn strings(v: &Value) -> Option<Vec<&str>> {
        v.as_array().map(|a| a.iter().filter_map(Value::as_str).collect())
    }
    let Some((kind, inner)) = value.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(0, number_size),
        "B" => inner.as_str().map_or(0, base64_len),
        "BOOL" | "NULL" => 1,
        "SS" => strings(inner).map_or(0, |s| s.iter().map(|s| s.len()).sum()),
        "NS" => strings(inner).map_or(0, |s| s.iter().map(|n| number_size(n)).sum()),
        "BS" => strings(inner).map_or(0, |s| s.iter().map(|b| base64_len(b)).sum()),
        "L" => inner.as_array().map_or(3, |list| 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>()),
        "M" => {
            inner.as_object().map_or(3, |map| 3 + map.iter().map(|(k, v)| k.len() + 1 + value_size(v)).sum::<usize>())
        }
        _ => 0,
    }
}

/// A number's size: 1 byte, plus 1 per two significant digits on each side of
/// the decimal point (leading and trailing zeros dropped), plus 1 if negative.
/// DynamoDB documents "about one byte per two significant digits, plus one";
/// the split at the decimal point and the sign byte are as the dynoxide
/// emulator measured them against DynamoDB.
pub fn number_size(text: &str) -> usize {
    let text = text.trim();
    let negative = text.starts_with('-');
    let unsigned = text.trim_start_matches(['-', '+']);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().unwrap_or(0)),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).filter(u8::is_ascii_digit).collect();
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    let trailing = digits.iter().rev().take_while(|&&d| d == b'0').count();
    if leading == digits.len() {
        return 1; // zero
    }
    let significant = digits.len() - leading - trailing;
    // Significant digits before the decimal point, after the exponent moves it.
    let point = whole.bytes().filter(u8::is_ascii_digit).count() as i64 + exponent - leading as i64;
    let before = point.clamp(0, significant as i64) as usize;
    let after = significant - before;
    before.div_ceil(2) + after.div_ceil(2) + 1 + usize::from(negative)
}

/// The decoded length of standard base64 text.
fn base64_len(text: &str) -> usize {
    let text = text.trim_end();
    let padding = text.bytes().rev().take_while(|&b| b == b'=').count();
    (text.len() / 4 * 3
        + match text.len() % 4 {
            2 => 1,
            3 => 2,
            _ => 0,
        })
    .saturating_sub(padding)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_follow_dynamodbs_rules() {
        let item = json!({
            "id": {"S": "abc"},            // 2 + 3
            "n": {"N": "12345"},           // 1 + (ceil(5/2) + 1)
            "b": {"B": "AAEC"},            // 1 + 3
            "t": {"BOOL": true},           // 1 + 1
            "z": {"NULL": true},           // 1 + 1
            "l": {"L": [{"S": "ab"}, {"N": "1"}]}, // 1 + 3 + (1+2) + (1+2)
            "m": {"M": {"k": {"S": "v"}}}, // 1 + 3 + (1+1+1)
            "ss": {"SS": ["a", "bc"]}      // 2 + 3
        });
        let item = item.as_object().unwrap();
        assert_eq!(item_size(item), 5 + 5 + 4 + 2 + 2 + 10 + 7 + 5);
    }

    #[test]
    fn number_sizes_count_significant_digits() {
        assert_eq!(number_size("0"), 1);
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("-7"), 3);
        assert_eq!(number_size("100"), 2, "trailing zeros are dropped");
        assert_eq!(number_size("0.001"), 2, "leading zeros are dropped");
        assert_eq!(number_size("12.34"), 3);
        assert_eq!(number_size("1.5e3"), 2, "1500: two significant digits before the point");
        assert_eq!(number_size("1234567890"), 6);
    }

    #[test]
    fn base64_lengths() {
        assert_eq!(base64_len(""), 0);
        assert_eq!(base64_len("YQ=="), 1);
        assert_eq!(base64_len("YWI="), 2);
        assert_eq!(base64_len("YWJj"), 3);
    }

    #[test]
    fn write_units_round_up_per_kilobyte_with_a_minimum_of_one() {
        assert_eq!(write_units(0), 1.0);
        assert_eq!(write_units(1024), 1.0);
        assert_eq!(write_units(1025), 2.0);
        assert_eq!(write_units(2560), 3.0);
    }

    #[test]
    fn demand_names_tables_and_minimum_charges() {
        let get = demand("GetItem", &json!({"TableName": "t", "Key": {}})).unwrap();
        assert_eq!((get.access, get.tables), (Access::Read, vec![("t".to_string(), 0.5)]));
        let strong = demand("Query", &json!({"TableName": "t", "ConsistentRead": true})).unwrap();
        assert_eq!(strong.tables[0].1, 1.0);
        let batch = demand(
            "BatchWriteItem",
            &json!({"RequestItems": {"a": [{"PutRequest": {}}, {"DeleteRequest": {}}], "b": [{"PutRequest": {}}]}}),
        )
        .unwrap();
        assert_eq!(batch.access, Access::Write);
        assert_eq!(batch.tables, vec![("a".to_string(), 2.0), ("b".to_string(), 1.0)]);
        let transaction = demand(
            "TransactWriteItems",
            &json!({"TransactItems": [{"Put": {"TableName": "a"}}, {"Delete": {"TableName": "a"}}, {"ConditionCheck": {"TableName": "b"}}]}),
        )
        .unwrap();
        assert!(transaction.transaction);
        assert_eq!(transaction.tables, vec![("a".to_string(), 4.0), ("b".to_string(), 2.0)]);
        assert_eq!(demand("DescribeTable", &json!({"TableName": "t"})), None);
    }

    #[test]
    fn consumed_capacity_reads_one_entry_or_a_list() {
        let one = json!({"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.5}});
        assert_eq!(consumed(&one), Some(vec![("t".to_string(), 1.5)]));
        let list = json!({"ConsumedCapacity": [{"TableName": "a", "CapacityUnits": 2.0}, {"TableName": "b", "CapacityUnits": 4.0}]});
        assert_eq!(consumed(&list), Some(vec![("a".to_string(), 2.0), ("b".to_string(), 4.0)]));
        assert_eq!(consumed(&json!({})), None);
    }
}
