//! DynamoDB expressions as values: the text together with the attribute
//! names and values its placeholders stand for, so a placeholder is never
//! sent without its binding (or a binding without its placeholder, which
//! DynamoDB refuses). Conditions combine with [`Expr::and`] / [`Expr::or`];
//! [`WithExpressions`] attaches them to the SDK's request builders.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

/// An expression (condition, update, filter or projection) and its bindings.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Expr {
    text: String,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expr {
    /// An expression with no bindings yet.
    pub fn new(text: impl Into<String>) -> Expr {
        Expr { text: text.into(), ..Expr::default() }
    }

    /// Binds a `#name` placeholder to an attribute name.
    pub fn name(mut self, placeholder: &str, attribute: &str) -> Expr {
        debug_assert!(self.text.contains(placeholder), "{placeholder} is not used in {}", self.text);
        self.names.insert(placeholder.to_string(), attribute.to_string());
        self
    }

    /// Binds a `:value` placeholder.
    pub fn value(mut self, placeholder: &str, value: AttributeValue) -> Expr {
        debug_assert!(self.text.contains(placeholder), "{placeholder} is not used in {}", self.text);
        self.values.insert(placeholder.to_string(), value);
        self
    }

    /// Both conditions.
    pub fn and(self, other: Expr) -> Expr {
        self.join("AND", other)
    }

    /// Either condition.
    pub fn or(self, other: Expr) -> Expr {
        self.join("OR", other)
    }

    /// The opposite condition.
    pub fn negate(mut self) -> Expr {
        self.text = format!("NOT ({})", self.text);
        self
    }

    /// The text, for tests and logs (it never holds values).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Merges the bindings of `other` into `self`. A placeholder bound twice
    /// must mean the same thing both times.
    fn merge_bindings(&mut self, other: Expr) -> String {
        for (placeholder, name) in other.names {
            let previous = self.names.insert(placeholder.clone(), name.clone());
            assert!(previous.is_none_or(|p| p == name), "{placeholder} bound to two attribute names");
        }
        for (placeholder, value) in other.values {
            let previous = self.values.insert(placeholder.clone(), value.clone());
            assert!(previous.is_none_or(|p| p == value), "{placeholder} bound to two values");
        }
        other.text
    }

    fn join(mut self, operator: &str, other: Expr) -> Expr {
        let other_text = self.merge_bindings(other);
        self.text = format!("({}) {operator} ({other_text})", self.text);
        self
    }
}

/// Attaches expressions to an SDK request builder, bindings included.
pub(crate) trait WithExpressions: Sized {
    /// Adds the expression's names and values to the request.
    fn bindings(self, expr: &Expr) -> Self;
}

/// Requests that carry a condition expression.
pub(crate) trait WithCondition: WithExpressions {
    /// Sets the condition expression.
    fn condition(self, condition: Expr) -> Self;
}

/// Requests that also carry an update expression.
pub(crate) trait WithUpdate: WithExpressions {
    /// Sets the update expression.
    fn update(self, update: Expr) -> Self;
}

macro_rules! with_expressions {
    ($($builder:ty),* $(,)?) => {$(
        impl WithExpressions for $builder {
            fn bindings(mut self, expr: &Expr) -> Self {
                for (placeholder, name) in &expr.names {
                    self = self.expression_attribute_names(placeholder, name);
                }
                for (placeholder, value) in &expr.values {
                    self = self.expression_attribute_values(placeholder, value.clone());
                }
                self
            }
        }
    )*};
}

macro_rules! with_condition {
    ($($builder:ty),* $(,)?) => {$(
        impl WithCondition for $builder {
            fn condition(self, condition: Expr) -> Self {
                self.bindings(&condition).condition_expression(condition.text)
            }
        }
    )*};
}

with_expressions!(
    aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder,
    aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder,
    aws_sdk_dynamodb::types::builders::PutBuilder,
    aws_sdk_dynamodb::types::builders::DeleteBuilder,
);

with_condition!(
    aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder,
    aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
    aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder,
    aws_sdk_dynamodb::types::builders::PutBuilder,
    aws_sdk_dynamodb::types::builders::DeleteBuilder,
);

impl WithUpdate for aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
    fn update(self, update: Expr) -> Self {
        self.bindings(&update).update_expression(update.text)
    }
}

/// A number attribute value.
pub(crate) fn attr_n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A string attribute value.
pub(crate) fn attr_s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_conditions_keep_every_binding() {
        let live = Expr::new("#exp > :now").name("#exp", "expires").value(":now", attr_n(5));
        let free = Expr::new("attribute_not_exists(#lock)").name("#lock", "lock");
        let both = live.and(free);
        assert_eq!(both.text(), "(#exp > :now) AND (attribute_not_exists(#lock))");
        assert_eq!(both.names.len(), 2);
        assert_eq!(both.values[":now"], attr_n(5));
    }

    #[test]
    #[should_panic(expected = "bound to two values")]
    fn a_placeholder_cannot_mean_two_values() {
        let a = Expr::new(":now").value(":now", attr_n(1));
        let b = Expr::new(":now").value(":now", attr_n(2));
        let _ = a.and(b);
    }
}
