//! [`RecordError`]: the `reason` label of `vast_metrics_errors_total`.

/// What the crate could not record or inspect, instead of failing the
/// caller: the `reason` label of `vast_metrics_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The metric name does not make a valid Prometheus name (ASCII letters,
    /// digits, `_` and `:`, not starting with a digit, at most
    /// [`MAX_NAME_LEN`](crate::prometheus::MAX_NAME_LEN) bytes).
    #[error("invalid metric name")]
    InvalidName,
    /// A label key is not a valid Prometheus label name, or is reserved.
    #[error("invalid or reserved label name")]
    InvalidLabelName,
    /// The label keys differ from the ones the family was created with.
    #[error("label keys differ from the family's")]
    LabelMismatch,
    /// The name is already used by a metric of another type.
    #[error("metric name already used with another type")]
    TypeConflict,
    /// A label value is longer than [`MAX_LABEL_VALUE_LEN`](crate::prometheus::MAX_LABEL_VALUE_LEN).
    #[error("label value too long")]
    LabelValueTooLong,
    /// The value is NaN or infinite.
    #[error("value is not finite")]
    InvalidValue,
    /// A source label went past the layer's cap and was recorded as `other`.
    #[error("source label cap reached")]
    SourceLabelOverflow,
    /// A body's `Content-Encoding` is one the inspection cannot decode: it
    /// was not inspected, and its verdict is the HTTP one.
    #[error("body encoding not inspected")]
    UnsupportedEncoding,
    /// A linear creative of an answer with ads had no `<Duration>`, or one
    /// that is not `HH:MM:SS(.mmm)`: it added nothing to
    /// `vast_ad_duration_seconds_total`.
    #[error("linear creative without a valid duration")]
    BadDuration,
}

impl RecordError {
    /// Every value, in label order.
    pub const ALL: [RecordError; 9] = [
        RecordError::InvalidName,
        RecordError::InvalidLabelName,
        RecordError::LabelMismatch,
        RecordError::TypeConflict,
        RecordError::LabelValueTooLong,
        RecordError::InvalidValue,
        RecordError::SourceLabelOverflow,
        RecordError::UnsupportedEncoding,
        RecordError::BadDuration,
    ];

    /// The `reason` label value.
    pub fn reason(self) -> &'static str {
        match self {
            RecordError::InvalidName => "invalid_name",
            RecordError::InvalidLabelName => "invalid_label_name",
            RecordError::LabelMismatch => "label_mismatch",
            RecordError::TypeConflict => "type_conflict",
            RecordError::LabelValueTooLong => "label_value_too_long",
            RecordError::InvalidValue => "invalid_value",
            RecordError::SourceLabelOverflow => "source_label_overflow",
            RecordError::UnsupportedEncoding => "unsupported_encoding",
            RecordError::BadDuration => "bad_duration",
        }
    }
}
