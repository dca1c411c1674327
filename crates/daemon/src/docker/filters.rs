//! The `filters` parameter of `GET /images/json`.
//!
//! docker sends a JSON object from filter name to values, either as a map
//! of value to `true` (what clients send today) or as a list (the old
//! form). hoistd implements `reference` (globs against familiar names),
//! `dangling` (images without tags) and `label` (on the image config's
//! labels). moby's time-based filters (`before`, `since`, `until`) are
//! refused as not implemented; any other name is an invalid filter, as in
//! moby.

use std::collections::BTreeMap;

/// The filters of one listing; empty lists filter nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFilters {
    /// Globs matched against each image name; an image shows when any of
    /// its names matches any glob, with only the matching names.
    pub reference: Vec<String>,
    /// `Some(true)`: only images without tags; `Some(false)`: only images
    /// with tags.
    pub dangling: Option<bool>,
    /// `key` or `key=value` on the config's labels; every one must hold.
    pub label: Vec<(String, Option<String>)>,
}

/// Why the filters cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    /// Malformed, or a filter docker does not know (400 in moby).
    Invalid(String),
    /// A filter docker knows but hoistd does not implement (501).
    Unsupported(String),
}

impl ImageFilters {
    /// Parses the `filters` query value (`""` is no filter).
    pub fn parse(text: &str) -> Result<ImageFilters, FilterError> {
        let mut filters = ImageFilters::default();
        if text.trim().is_empty() {
            return Ok(filters);
        }
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| FilterError::Invalid(format!("invalid filter: {e}")))?;
        let object = value
            .as_object()
            .ok_or_else(|| FilterError::Invalid("invalid filter: not a JSON object".into()))?;
        let mut entries: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (name, values) in object {
            let values = match values {
                serde_json::Value::Object(map) => map.keys().cloned().collect(),
                serde_json::Value::Array(list) => list
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| FilterError::Invalid(format!("invalid filter '{name}'")))?,
                _ => return Err(FilterError::Invalid(format!("invalid filter '{name}'"))),
            };
            entries.insert(name.as_str(), values);
        }
        for (name, values) in entries {
            match name {
                "reference" => filters.reference = values,
                "dangling" => {
                    for value in values {
                        let wanted = match value.to_ascii_lowercase().as_str() {
                            "true" | "1" => true,
                            "false" | "0" => false,
                            _ => {
                                return Err(FilterError::Invalid(format!(
                                    "invalid filter 'dangling={value}'"
                                )));
                            }
                        };
                        if filters.dangling.is_some_and(|d| d != wanted) {
                            return Err(FilterError::Invalid(
                                "invalid filter: dangling is both true and false".into(),
                            ));
                        }
                        filters.dangling = Some(wanted);
                    }
                }
                "label" => {
                    filters.label = values
                        .into_iter()
                        .map(|v| match v.split_once('=') {
                            Some((key, value)) => (key.to_string(), Some(value.to_string())),
                            None => (v, None),
                        })
                        .collect();
                }
                "before" | "since" | "until" => {
                    return Err(FilterError::Unsupported(format!(
                        "the image filter '{name}' is not implemented by hoistd"
                    )));
                }
                other => return Err(FilterError::Invalid(format!("invalid filter '{other}'"))),
            }
        }
        Ok(filters)
    }

    /// Whether an image's config labels pass the `label` filters.
    pub fn labels_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.label.iter().all(|(key, value)| match value {
            None => labels.contains_key(key),
            Some(value) => labels.get(key) == Some(value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse() {
        let map = ImageFilters::parse(
            r#"{"reference":{"alpine":true,"busy*":true},"dangling":{"false":true},"label":{"a=b":true,"c":true}}"#,
        )
        .unwrap();
        assert_eq!(map.reference, vec!["alpine", "busy*"]);
        assert_eq!(map.dangling, Some(false));
        assert_eq!(
            map.label,
            vec![
                ("a".to_string(), Some("b".to_string())),
                ("c".to_string(), None)
            ]
        );
        let list = ImageFilters::parse(r#"{"reference":["alpine"],"dangling":["1"]}"#).unwrap();
        assert_eq!(list.reference, vec!["alpine"]);
        assert_eq!(list.dangling, Some(true));
        assert_eq!(ImageFilters::parse("").unwrap(), ImageFilters::default());
        assert_eq!(ImageFilters::parse("{}").unwrap(), ImageFilters::default());
    }

    #[test]
    fn bad_and_unsupported_filters() {
        assert!(matches!(
            ImageFilters::parse(r#"{"colour":{"red":true}}"#),
            Err(FilterError::Invalid(m)) if m == "invalid filter 'colour'"
        ));
        assert!(matches!(
            ImageFilters::parse(r#"{"dangling":{"maybe":true}}"#),
            Err(FilterError::Invalid(m)) if m == "invalid filter 'dangling=maybe'"
        ));
        assert!(matches!(
            ImageFilters::parse(r#"{"dangling":{"true":true,"false":true}}"#),
            Err(FilterError::Invalid(_))
        ));
        assert!(matches!(
            ImageFilters::parse(r#"{"since":{"alpine":true}}"#),
            Err(FilterError::Unsupported(_))
        ));
        assert!(matches!(
            ImageFilters::parse("not json"),
            Err(FilterError::Invalid(_))
        ));
    }

    #[test]
    fn labels() {
        let filters = ImageFilters::parse(r#"{"label":{"a=b":true,"c":true}}"#).unwrap();
        let mut labels = BTreeMap::new();
        labels.insert("a".to_string(), "b".to_string());
        assert!(!filters.labels_match(&labels));
        labels.insert("c".to_string(), "anything".to_string());
        assert!(filters.labels_match(&labels));
        labels.insert("a".to_string(), "other".to_string());
        assert!(!filters.labels_match(&labels));
    }
}
