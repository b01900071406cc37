//! Metrics of an invocation as CloudWatch Embedded Metric Format log lines,
//! which the stack's dashboard reads (namespace `Lifeboat`).

/// The metric namespace the stack's dashboard and alarms read.
pub const METRIC_NAMESPACE: &str = "Lifeboat";

/// Metrics of one invocation, written as one Embedded Metric Format line:
/// CloudWatch turns it into metrics without a `PutMetricData` call (or the
/// IAM right for one). Metrics without dimensions are the stack's totals;
/// [`Metrics::with_dimension`] adds one dimension to all of a line's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    dimension: Option<(String, String)>,
    values: Vec<(String, f64, &'static str)>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_dimension(name: &str, value: &str) -> Self {
        Self {
            dimension: Some((name.to_owned(), value.to_owned())),
            values: Vec::new(),
        }
    }

    /// Adds a metric; `unit` is a CloudWatch unit (`Count`, `Bytes`, `Seconds`).
    pub fn put(mut self, name: &str, value: f64, unit: &'static str) -> Self {
        self.values.push((name.to_owned(), value, unit));
        self
    }

    /// The EMF document, timestamped `at_ms` (milliseconds since the epoch).
    pub fn document(&self, at_ms: u128) -> serde_json::Value {
        let dimensions: Vec<&str> = self.dimension.iter().map(|(n, _)| n.as_str()).collect();
        let definitions: Vec<serde_json::Value> = self
            .values
            .iter()
            .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit}))
            .collect();
        let mut document = serde_json::json!({
            "_aws": {
                "Timestamp": at_ms as u64,
                "CloudWatchMetrics": [{
                    "Namespace": METRIC_NAMESPACE,
                    "Dimensions": [dimensions],
                    "Metrics": definitions,
                }],
            },
        });
        if let Some(fields) = document.as_object_mut() {
            if let Some((name, value)) = &self.dimension {
                fields.insert(name.clone(), value.clone().into());
            }
            for (name, value, _) in &self.values {
                fields.insert(name.clone(), (*value).into());
            }
        }
        document
    }

    /// Writes the line to standard output (the function's log stream).
    pub fn emit(self) {
        if self.values.is_empty() {
            return;
        }
        let at_ms = u128::try_from(jiff::Timestamp::now().as_millisecond()).unwrap_or_default();
        println!("{}", self.document(at_ms));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metrics_are_embedded_metric_format_documents() {
        let doc = Metrics::with_dimension("Source", "s3://a/")
            .put("RpoAgeSeconds", 90.0, "Seconds")
            .document(1_700_000_000_000);
        assert_eq!(
            doc,
            json!({
                "_aws": {"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{
                    "Namespace": "Lifeboat",
                    "Dimensions": [["Source"]],
                    "Metrics": [{"Name": "RpoAgeSeconds", "Unit": "Seconds"}]}]},
                "Source": "s3://a/",
                "RpoAgeSeconds": 90.0
            })
        );
        let totals = Metrics::new().put("BackupsCompleted", 1.0, "Count").document(1);
        assert_eq!(totals["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(totals["BackupsCompleted"], 1.0);
    }
}
