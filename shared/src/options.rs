//! Declaring options once: [`declare_options!`](crate::declare_options) turns one table (field, type,
//! environment variable, default, bounds) into a settings struct, its
//! builder, reading from the environment and writing back to it, so no
//! option is listed twice. The library's [`crate::Config`] is declared with
//! it; the HTTP crate declares its cookie settings the same way.
//!
//! Every value is parsed by a *kind* (a module of [`kinds`] with `parse` and
//! `render`), and a bad value is a [`ConfigError`] naming the variable and the
//! value: nothing falls back silently.

/// A bad option value: which variable, what it held, and why it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable (also the option's name in upper case).
    pub variable: &'static str,
    /// The value as given (from the environment) or as rendered (from a builder).
    pub value: String,
    /// What a valid value looks like.
    pub reason: String,
}

impl ConfigError {
    /// An error for `variable` holding `value`.
    pub fn new(variable: &'static str, value: impl ToString, reason: impl Into<String>) -> ConfigError {
        ConfigError { variable, value: value.to_string(), reason: reason.into() }
    }
}

/// One declared option, for listings (README, template checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionSpec {
    /// Environment variable name.
    pub variable: &'static str,
    /// The option's doc comment.
    pub doc: &'static str,
}

/// How option values are written in the environment: each kind parses a raw
/// string and renders a value back (`render(parse(s))` is `s` for canonical `s`).
pub mod kinds {
    /// Free text, taken as is.
    pub mod text {
        /// The text itself.
        pub fn parse(raw: &str) -> Result<String, String> {
            Ok(raw.to_string())
        }
        /// The text itself.
        pub fn render(value: &str) -> String {
            value.to_string()
        }
    }

    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    pub mod flag {
        /// A boolean in any of the usual spellings.
        pub fn parse(raw: &str) -> Result<bool, String> {
            match raw.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err("must be true or false".into()),
            }
        }
        /// `true` or `false`.
        pub fn render(value: &bool) -> String {
            value.to_string()
        }
    }

    /// A whole number, 0 or more.
    pub mod count {
        /// A whole number.
        pub fn parse(raw: &str) -> Result<usize, String> {
            raw.trim().parse().map_err(|_| "must be a whole number, 0 or more".into())
        }
        /// Decimal digits.
        pub fn render(value: &usize) -> String {
            value.to_string()
        }
    }

    /// A decimal number, 0 or more.
    pub mod number {
        /// A finite number, 0 or more.
        pub fn parse(raw: &str) -> Result<f64, String> {
            match raw.trim().parse::<f64>() {
                Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
                _ => Err("must be a number, 0 or more".into()),
            }
        }
        /// Shortest decimal form.
        pub fn render(value: &f64) -> String {
            value.to_string()
        }
    }

    /// A duration written as whole seconds.
    pub mod whole_seconds {
        use std::time::Duration;
        /// Whole seconds.
        pub fn parse(raw: &str) -> Result<Duration, String> {
            raw.trim()
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| "must be a whole number of seconds, 0 or more".into())
        }
        /// Whole seconds.
        pub fn render(value: &Duration) -> String {
            value.as_secs().to_string()
        }
    }

    /// A duration written as seconds, fractions allowed (`0.5`).
    pub mod seconds {
        use std::time::Duration;
        /// Seconds, fractions allowed.
        pub fn parse(raw: &str) -> Result<Duration, String> {
            let seconds: f64 = raw.trim().parse().map_err(|_| "must be a number of seconds".to_string())?;
            Duration::try_from_secs_f64(seconds).map_err(|_| "must be a number of seconds, 0 or more".into())
        }
        /// Seconds, without a fraction when whole.
        pub fn render(value: &Duration) -> String {
            match value.subsec_nanos() {
                0 => value.as_secs().to_string(),
                _ => value.as_secs_f64().to_string(),
            }
        }
    }

    /// A duration written as whole microseconds (the PHP handler's `*_microtime`).
    pub mod micros {
        use std::time::Duration;
        /// Whole microseconds.
        pub fn parse(raw: &str) -> Result<Duration, String> {
            raw.trim()
                .parse()
                .map(Duration::from_micros)
                .map_err(|_| "must be a whole number of microseconds, 0 or more".into())
        }
        /// Whole microseconds.
        pub fn render(value: &Duration) -> String {
            value.as_micros().to_string()
        }
    }

    /// One of a type's names: its `FromStr` parses, its `Display` renders.
    pub mod choice {
        use std::fmt::Display;
        use std::str::FromStr;
        /// The type's own parsing; its error is the reason.
        pub fn parse<T: FromStr>(raw: &str) -> Result<T, String>
        where
            T::Err: Display,
        {
            raw.parse().map_err(|err: T::Err| err.to_string())
        }
        /// The type's own name for the value.
        pub fn render<T: Display>(value: &T) -> String {
            value.to_string()
        }
    }

    /// An optional text: empty means none.
    pub mod optional_text {
        /// None when empty.
        pub fn parse(raw: &str) -> Result<Option<String>, String> {
            Ok((!raw.is_empty()).then(|| raw.to_string()))
        }
        /// Empty for none.
        pub fn render(value: &Option<String>) -> String {
            value.clone().unwrap_or_default()
        }
    }
}

/// Checks for option bounds, used in `check` clauses.
pub mod bounds {
    use std::fmt::Debug;
    use std::ops::RangeInclusive;

    /// Within `range`; `what` describes the unit in the message.
    pub fn within<T: PartialOrd + Debug>(value: &T, range: RangeInclusive<T>, what: &str) -> Result<(), String> {
        if range.contains(value) {
            Ok(())
        } else {
            let unit = if what.is_empty() { String::new() } else { format!(" {what}") };
            Err(format!("must be between {:?} and {:?}{unit}", range.start(), range.end()))
        }
    }
}

/// Declares a settings struct from one table of options. For each option:
/// doc comment, field, type, `env "VARIABLE"`, `kind` (a path to a module
/// with `parse` and `render`, e.g. one of [`kinds`]), `default` (an
/// expression that may use options declared above it, and the builder's raw
/// values through the name given after the builder's name), and optionally
/// `check` (a closure `&T -> Result<(), String>`) and `empty "why"`: the
/// variable set to the empty string takes the default (for derived defaults,
/// which SAM passes as "" when its parameter is left empty).
///
/// It emits the struct, its builder (a setter per option; `build` applies
/// defaults, then `validate`), `validate` (each value's check, then the
/// struct's own `check_relations`, which the caller writes),
/// `from_env`/`from_lookup`, `to_env` and `OPTIONS`.
#[macro_export]
macro_rules! declare_options {
    (
        $(#[$meta:meta])*
        pub struct $settings:ident;
        $(#[$builder_meta:meta])*
        pub struct $builder:ident($given:ident);
        $(
            $(#[doc = $doc:literal])*
            $field:ident: $ty:ty, env $env:literal, kind $($kind:ident)::+, default $default:expr
                $(, check $check:expr)? $(, empty $empty:literal)?;
        )*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $settings {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        $(#[$builder_meta])*
        #[derive(Debug, Clone, Default)]
        pub struct $builder {
            $( $field: Option<$ty>, )*
        }

        impl $builder {
            $(
                $(#[doc = $doc])*
                pub fn $field(mut self, value: impl Into<$ty>) -> Self {
                    self.$field = Some(value.into());
                    self
                }
            )*

            /// Applies the defaults (some derived from other options) and
            /// checks every value and every relation between values.
            pub fn build(self) -> Result<$settings, $crate::options::ConfigError> {
                #[allow(unused_variables)]
                let $given = &self;
                $(
                    let $field: $ty = match self.$field.clone() {
                        Some(value) => value,
                        None => $default,
                    };
                )*
                let settings = $settings { $( $field, )* };
                settings.validate()?;
                Ok(settings)
            }
        }

        impl $settings {
            /// Checks every value's bounds, then the relations between values.
            pub fn validate(&self) -> Result<(), $crate::options::ConfigError> {
                $(
                    #[allow(unused_variables)]
                    let render = |value: &$ty| $($kind)::+::render(value);
                    $(
                        let check: &dyn Fn(&$ty) -> Result<(), String> = &$check;
                        check(&self.$field)
                            .map_err(|reason| $crate::options::ConfigError::new($env, render(&self.$field), reason))?;
                    )?
                )*
                self.check_relations()
            }

            /// Every option, in declaration order.
            pub const OPTIONS: &'static [$crate::options::OptionSpec] = &[
                $( $crate::options::OptionSpec { variable: $env, doc: concat!($($doc, "\n",)*) }, )*
            ];

            /// A builder with every option at its default.
            pub fn builder() -> $builder {
                $builder::default()
            }

            /// Reads every option from the process environment.
            pub fn from_env() -> Result<$settings, $crate::options::ConfigError> {
                Self::from_lookup(|name| std::env::var(name).ok())
            }

            /// Reads every option through `lookup` (a variable name to its
            /// value): an unset variable takes the default, a set one must
            /// parse (empty counts as unset where the option says so).
            pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<$settings, $crate::options::ConfigError> {
                let mut builder = $builder::default();
                $(
                    let empty_is_unset = false $( || { let _why: &str = $empty; true } )?;
                    if let Some(raw) = lookup($env).filter(|raw| !(empty_is_unset && raw.is_empty())) {
                        let value = $($kind)::+::parse(&raw)
                            .map_err(|reason| $crate::options::ConfigError::new($env, &raw, reason))?;
                        builder.$field = Some(value);
                    }
                )*
                // Name the value as the environment wrote it.
                builder.build().map_err(|mut err| {
                    if let Some(raw) = lookup(err.variable) {
                        err.value = raw;
                    }
                    err
                })
            }

            /// These settings as environment variables, in declaration order:
            /// `from_lookup` of this gives the same settings back.
            pub fn to_env(&self) -> Vec<(&'static str, String)> {
                vec![ $( ($env, $($kind)::+::render(&self.$field)), )* ]
            }
        }

        impl Default for $settings {
            fn default() -> Self {
                $builder::default().build().expect("the defaults are valid")
            }
        }
    };
}
