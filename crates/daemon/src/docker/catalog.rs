//! What docker sees of the engine's image records, as pure functions: the
//! records grouped into images, names and ids resolved, removals planned,
//! and docker's `ImageSummary` and `ImageInspect` shapes.
//!
//! # Image ids
//!
//! An image's id is the digest of its record's target, the manifest or
//! index it was pulled as (`sha256:…`), as docker 28 reports it with the
//! containerd image store (the default from docker 29), rather than the
//! classic store's config digest. hoist's store is shaped like containerd's
//! (a name points at a target), so the target digest is what identifies an
//! image: it is one value however many platforms a record holds, it needs
//! no config to be stored, it equals the `Digest:` line of the pull that
//! created it and the digest in its `RepoDigests`. Records (names) sharing
//! a target are one image, with one id and several `RepoTags`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hoist_oci::{Descriptor, Reference};
use serde_json::{Value, json};

use super::error::ApiError;
use super::names::{self, NameKind};
use super::version::ApiVersion;

/// One engine image record, as far as docker's views need it.
#[derive(Debug, Clone)]
pub struct Record {
    /// The normalized name, as recorded.
    pub name: String,
    /// The name parsed.
    pub reference: Reference,
    /// The target (index or manifest).
    pub target: Descriptor,
    /// Bytes of the stored blobs of the image.
    pub size: u64,
    /// When the name was first recorded.
    pub created_at: SystemTime,
    /// When the name last changed target.
    pub updated_at: SystemTime,
}

impl Record {
    /// docker's image id: the target digest.
    pub fn id(&self) -> String {
        self.target.digest().to_string()
    }

    /// The familiar tag (`alpine:latest`), for a record with a tag.
    pub fn repo_tag(&self) -> Option<String> {
        let tag = self.reference.tag()?;
        Some(format!("{}:{tag}", self.reference.familiar_name()))
    }

    /// The familiar repository digest (`alpine@sha256:…`).
    pub fn repo_digest(&self) -> String {
        format!("{}@{}", self.reference.familiar_name(), self.id())
    }
}

/// The first 12 hex digits of an id, as docker prints it.
pub fn short(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// A name resolved to a record.
#[derive(Debug, Clone, Copy)]
pub struct Found<'a> {
    /// The record named (for an id, the first record of that target).
    pub record: &'a Record,
    /// The name was an id or id prefix.
    pub by_id: bool,
}

/// What `DELETE /images/{name}` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Remove these names; the image keeps others.
    Untag(Vec<String>),
    /// Remove every name of the image, and so the image.
    Delete {
        /// The names (records) to remove.
        names: Vec<String>,
        /// The image id.
        id: String,
    },
}

/// The engine's records, seen as docker images.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    records: Vec<Record>,
}

impl Catalog {
    /// A catalog of `records`, kept sorted by name.
    pub fn new(mut records: Vec<Record>) -> Catalog {
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Catalog { records }
    }

    /// The records sharing `id`.
    pub fn image(&self, id: &str) -> Vec<&Record> {
        self.records.iter().filter(|r| r.id() == id).collect()
    }

    /// Every image: records grouped by id, newest first.
    pub fn images(&self) -> Vec<Vec<&Record>> {
        let mut groups: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
        for record in &self.records {
            groups.entry(record.id()).or_default().push(record);
        }
        let mut images: Vec<Vec<&Record>> = groups.into_values().collect();
        images.sort_by_key(|records| std::cmp::Reverse(records.iter().map(|r| r.created_at).min()));
        images
    }

    /// Resolves a name from a path the way moby's `resolveImage` does:
    /// an id or id prefix (`sha256:` or 64 hex digits), a recorded name
    /// (normalized, `latest` by default), `repo@digest` of a record of that
    /// repository, and a short hex string as a name first, then an id
    /// prefix.
    pub fn lookup(&self, input: &str) -> Result<Found<'_>, ApiError> {
        match names::classify(input) {
            NameKind::Id(hex) => self.by_id(&hex, input),
            NameKind::NameOrId(hex) => match self.by_name(input)? {
                Some(record) => Ok(Found {
                    record,
                    by_id: false,
                }),
                None => self.by_id(&hex, input),
            },
            NameKind::Name => {
                let reference = parse(input)?;
                match self.by_name(input)? {
                    Some(record) => Ok(Found {
                        record,
                        by_id: false,
                    }),
                    None => Err(no_such_image(&reference.familiar())),
                }
            }
        }
    }

    fn by_name(&self, input: &str) -> Result<Option<&Record>, ApiError> {
        let reference = parse(input)?;
        let name = reference.to_string();
        if let Some(record) = self.records.iter().find(|r| r.name == name) {
            return Ok(Some(record));
        }
        if let Some(digest) = reference.digest() {
            return Ok(self
                .records
                .iter()
                .find(|r| r.reference.name() == reference.name() && r.target.digest() == digest));
        }
        Ok(None)
    }

    fn by_id(&self, hex: &str, input: &str) -> Result<Found<'_>, ApiError> {
        let prefix = format!("sha256:{hex}");
        let mut matching = self.records.iter().filter(|r| r.id().starts_with(&prefix));
        let Some(record) = matching.next() else {
            return Err(no_such_image(input));
        };
        if matching.any(|r| r.id() != record.id()) {
            return Err(ApiError::not_found(format!(
                "ambiguous reference: {input} names more than one image"
            )));
        }
        Ok(Found {
            record,
            by_id: true,
        })
    }

    /// Plans `DELETE /images/{input}` as moby's containerd image service
    /// does (there are no containers to conflict with): an id removes every
    /// name of the image (refused without `force` when there are several);
    /// a name removes that name, and the image with it when no other name
    /// of the image remains.
    pub fn plan_removal(&self, input: &str, force: bool) -> Result<Removal, ApiError> {
        let found = self.lookup(input)?;
        let id = found.record.id();
        let all = self.image(&id);
        let names = |records: &[&Record]| records.iter().map(|r| r.name.clone()).collect();
        if found.by_id {
            if all.len() > 1 && !force {
                return Err(ApiError::conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short(&id)
                )));
            }
            return Ok(Removal::Delete {
                names: names(&all),
                id,
            });
        }
        // A `repo@digest` name stands for every name of that repository.
        let named = match parse(input)? {
            reference if reference.digest().is_some() => reference,
            _ => found.record.reference.clone(),
        };
        let same = same_references(&named, &all);
        if same.len() == all.len() {
            Ok(Removal::Delete {
                names: names(&all),
                id,
            })
        } else {
            Ok(Removal::Untag(names(&same)))
        }
    }
}

/// moby's `getSameReferences`: the records of one image that `named`
/// stands for: same repository and tag, or every tag of the repository for
/// a digest reference; digest-only records of the repository come along
/// when no other tag of it remains.
fn same_references<'a>(named: &Reference, all: &[&'a Record]) -> Vec<&'a Record> {
    let every_tag = named.tag().is_none();
    let mut same = Vec::new();
    let mut digest_only = Some(Vec::new());
    for &record in all {
        if record.reference.name() != named.name() {
            continue;
        }
        if every_tag {
            same.push(record);
            continue;
        }
        match record.reference.tag() {
            Some(tag) if Some(tag) == named.tag() => same.push(record),
            Some(_) => digest_only = None,
            None => {
                if let Some(refs) = digest_only.as_mut() {
                    refs.push(record);
                }
            }
        }
    }
    same.extend(digest_only.unwrap_or_default());
    same
}

fn parse(input: &str) -> Result<Reference, ApiError> {
    Reference::parse(input)
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))
}

/// moby's `ErrImageDoesNotExist`.
pub fn no_such_image(name: &str) -> ApiError {
    ApiError::not_found(format!("No such image: {name}"))
}

/// What docker's views read from an image config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigView {
    /// `created`, as written (RFC 3339).
    pub created: Option<String>,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `os`.
    pub os: String,
    /// `architecture`.
    pub architecture: String,
    /// `variant`.
    pub variant: String,
    /// `os.version`.
    pub os_version: String,
    /// `author`.
    pub author: String,
    /// `comment`.
    pub comment: String,
    /// `docker_version`.
    pub docker_version: String,
    /// `config`, the runtime defaults (`Env`, `Cmd`, …).
    pub config: Option<serde_json::Map<String, Value>>,
    /// `rootfs.diff_ids`.
    pub diff_ids: Vec<String>,
}

impl ConfigView {
    /// Reads an image config's JSON; missing fields stay empty.
    pub fn from_json(value: &Value) -> ConfigView {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let config = value.get("config").and_then(Value::as_object).cloned();
        let labels = config
            .as_ref()
            .and_then(|c| c.get("Labels"))
            .and_then(Value::as_object)
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let diff_ids = value
            .pointer("/rootfs/diff_ids")
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        ConfigView {
            created: value
                .get("created")
                .and_then(Value::as_str)
                .map(str::to_string),
            labels,
            os: text("os"),
            architecture: text("architecture"),
            variant: text("variant"),
            os_version: text("os.version"),
            author: text("author"),
            comment: text("comment"),
            docker_version: text("docker_version"),
            config,
            diff_ids,
        }
    }
}

/// docker's `ImageSummary` of the image `records` (one id), showing the
/// names in `shown` (all of them unless a `reference` filter chose some).
pub fn summary_json(
    records: &[&Record],
    shown: &[&Record],
    config: &ConfigView,
    version: ApiVersion,
) -> Value {
    let first = records[0];
    let created = config
        .created
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| unix_seconds(earliest(records)));
    let size = records.iter().map(|r| r.size).max().unwrap_or(0);
    let mut summary = json!({
        "Containers": if version.at_least(1, 51) { 0 } else { -1 },
        "Created": created,
        "Id": first.id(),
        "Labels": config.labels,
        "ParentId": "",
        "RepoDigests": repo_digests(shown),
        "RepoTags": shown.iter().filter_map(|r| r.repo_tag()).collect::<Vec<_>>(),
        "SharedSize": -1,
        "Size": size,
    });
    if !version.at_least(1, 44) {
        summary["VirtualSize"] = json!(size);
    }
    if version.at_least(1, 48) {
        summary["Descriptor"] = serde_json::to_value(&first.target).unwrap_or(Value::Null);
    }
    summary
}

/// docker's `ImageInspect` of the image `records` (one id).
pub fn inspect_json(
    records: &[&Record],
    config: &ConfigView,
    graph_driver: &str,
    version: ApiVersion,
) -> Value {
    let first = records[0];
    let size = records.iter().map(|r| r.size).max().unwrap_or(0);
    let last_tagged = records
        .iter()
        .map(|r| r.updated_at)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    // moby's fields without `omitempty` in the runtime config, and before
    // 1.50 those of the legacy container config too.
    let legacy: &[(&str, Value)] = if version.at_least(1, 50) {
        &[
            ("Cmd", Value::Null),
            ("Entrypoint", Value::Null),
            ("Env", Value::Null),
            ("Labels", Value::Null),
            ("OnBuild", Value::Null),
            ("User", json!("")),
            ("Volumes", Value::Null),
            ("WorkingDir", json!("")),
        ]
    } else {
        &[
            ("AttachStderr", json!(false)),
            ("AttachStdin", json!(false)),
            ("AttachStdout", json!(false)),
            ("Cmd", Value::Null),
            ("Domainname", json!("")),
            ("Entrypoint", Value::Null),
            ("Env", Value::Null),
            ("Hostname", json!("")),
            ("Image", json!("")),
            ("Labels", Value::Null),
            ("OnBuild", Value::Null),
            ("OpenStdin", json!(false)),
            ("StdinOnce", json!(false)),
            ("Tty", json!(false)),
            ("User", json!("")),
            ("Volumes", Value::Null),
            ("WorkingDir", json!("")),
        ]
    };
    let mut runtime = config.config.clone().unwrap_or_default();
    for (key, value) in legacy {
        runtime
            .entry(key.to_string())
            .or_insert_with(|| value.clone());
    }
    let mut rootfs = json!({ "Type": "layers" });
    if !config.diff_ids.is_empty() {
        rootfs["Layers"] = json!(config.diff_ids);
    }
    let mut inspect = json!({
        "Id": first.id(),
        "RepoTags": records.iter().filter_map(|r| r.repo_tag()).collect::<Vec<_>>(),
        "RepoDigests": repo_digests(records),
        "Parent": "",
        "Comment": config.comment,
        "DockerVersion": config.docker_version,
        "Author": config.author,
        "Config": runtime,
        "Architecture": config.architecture,
        "Os": config.os,
        "Size": size,
        "GraphDriver": { "Name": graph_driver, "Data": null },
        "RootFS": rootfs,
        "Metadata": { "LastTagTime": rfc3339_nano(last_tagged) },
    });
    match &config.created {
        Some(created) => inspect["Created"] = json!(created),
        // Before 1.44 moby always wrote a time, the zero one when unknown.
        None if !version.at_least(1, 44) => inspect["Created"] = json!("0001-01-01T00:00:00Z"),
        None => {}
    }
    if !config.variant.is_empty() {
        inspect["Variant"] = json!(config.variant);
    }
    if !config.os_version.is_empty() {
        inspect["OsVersion"] = json!(config.os_version);
    }
    if !version.at_least(1, 44) {
        inspect["VirtualSize"] = json!(size);
    }
    if version.at_least(1, 48) {
        inspect["Descriptor"] = serde_json::to_value(&first.target).unwrap_or(Value::Null);
    }
    inspect
}

fn repo_digests(records: &[&Record]) -> Vec<String> {
    let mut digests: Vec<String> = records.iter().map(|r| r.repo_digest()).collect();
    digests.sort();
    digests.dedup();
    digests
}

fn earliest(records: &[&Record]) -> SystemTime {
    records
        .iter()
        .map(|r| r.created_at)
        .min()
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day since 1970-01-01 (Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.RFC3339Nano` in UTC: the fraction without trailing zeros,
/// none when whole.
pub fn rfc3339_nano(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let seconds = since.as_secs() as i64;
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    );
    let nanos = since.subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    text
}

/// Seconds since the epoch of an RFC 3339 time (`2024-05-01T12:00:00Z`,
/// with an optional fraction and a `Z` or `±hh:mm` offset).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !matches!(bytes[10], b'T' | b't' | b' ') {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use hoist_oci::Digest;

    use super::*;

    fn descriptor(c: char) -> Descriptor {
        let digest = Digest::from_str(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        Descriptor::new(
            "application/vnd.oci.image.manifest.v1+json".into(),
            500,
            digest,
        )
    }

    fn record(name: &str, target: char, created: u64) -> Record {
        let reference = Reference::parse(name).unwrap();
        Record {
            name: reference.to_string(),
            reference,
            target: descriptor(target),
            size: 1000,
            created_at: SystemTime::UNIX_EPOCH + Duration::from_secs(created),
            updated_at: SystemTime::UNIX_EPOCH + Duration::from_secs(created + 5),
        }
    }

    fn catalog() -> Catalog {
        Catalog::new(vec![
            record("alpine:3.20", 'a', 10),
            record("alpine:latest", 'a', 20),
            record("127.0.0.1:5000/team/app:1.0", 'b', 30),
            record("local/app:2", 'b', 40),
            record(&format!("busybox@sha256:{}", "c".repeat(64)), 'c', 50),
            record("busybox:1", 'd', 60),
        ])
    }

    fn id(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn names_and_ids_resolve() {
        let catalog = catalog();
        let found = catalog.lookup("alpine").unwrap();
        assert_eq!(found.record.name, "docker.io/library/alpine:latest");
        assert!(!found.by_id);
        assert_eq!(
            catalog
                .lookup("127.0.0.1:5000/team/app:1.0")
                .unwrap()
                .record
                .id(),
            id('b')
        );
        let by_id = catalog.lookup(&"b".repeat(12)).unwrap();
        assert!(by_id.by_id);
        assert_eq!(by_id.record.id(), id('b'));
        assert!(catalog.lookup(&id('a')).unwrap().by_id);
        assert!(
            catalog
                .lookup(&format!("sha256:{}", "d".repeat(5)))
                .unwrap()
                .by_id
        );
        // A repository digest finds the record of that repository.
        let by_digest = catalog.lookup(&format!("local/app@{}", id('b'))).unwrap();
        assert_eq!(by_digest.record.name, "docker.io/local/app:2");
        let missing = catalog.lookup("nope").unwrap_err();
        assert_eq!(missing.status, axum::http::StatusCode::NOT_FOUND);
        assert_eq!(missing.message, "No such image: nope:latest");
        assert_eq!(
            catalog.lookup("eeee").unwrap_err().message,
            "No such image: eeee"
        );
        assert_eq!(
            catalog.lookup("Bad Name").unwrap_err().status,
            axum::http::StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn removals_untag_or_delete() {
        let catalog = catalog();
        assert_eq!(
            catalog.plan_removal("local/app:2", false).unwrap(),
            Removal::Untag(vec!["docker.io/local/app:2".into()])
        );
        assert_eq!(
            catalog.plan_removal("busybox:1", false).unwrap(),
            Removal::Delete {
                names: vec!["docker.io/library/busybox:1".into()],
                id: id('d'),
            }
        );
        let conflict = catalog.plan_removal(&"a".repeat(12), false).unwrap_err();
        assert_eq!(conflict.status, axum::http::StatusCode::CONFLICT);
        assert_eq!(
            conflict.message,
            format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                "a".repeat(12)
            )
        );
        assert_eq!(
            catalog.plan_removal(&"a".repeat(12), true).unwrap(),
            Removal::Delete {
                names: vec![
                    "docker.io/library/alpine:3.20".into(),
                    "docker.io/library/alpine:latest".into()
                ],
                id: id('a'),
            }
        );
        // A digest name stands for every name of its repository.
        assert_eq!(
            catalog
                .plan_removal(&format!("alpine@{}", id('a')), false)
                .unwrap(),
            Removal::Delete {
                names: vec![
                    "docker.io/library/alpine:3.20".into(),
                    "docker.io/library/alpine:latest".into()
                ],
                id: id('a'),
            }
        );
        assert!(catalog.plan_removal("nope", false).is_err());
    }

    #[test]
    fn digest_only_names_go_with_the_last_tag() {
        let digest_name = format!("app@{}", id('e'));
        let catalog = Catalog::new(vec![record("app:1", 'e', 1), record(&digest_name, 'e', 2)]);
        match catalog.plan_removal("app:1", false).unwrap() {
            Removal::Delete { names, .. } => assert_eq!(names.len(), 2),
            other => panic!("{other:?}"),
        }
        let catalog = Catalog::new(vec![
            record("app:1", 'e', 1),
            record("app:2", 'e', 1),
            record(&digest_name, 'e', 2),
        ]);
        assert_eq!(
            catalog.plan_removal("app:1", false).unwrap(),
            Removal::Untag(vec!["docker.io/library/app:1".into()])
        );
    }

    #[test]
    fn images_group_by_target_newest_first() {
        let catalog = catalog();
        let images = catalog.images();
        assert_eq!(images.len(), 4);
        assert_eq!(images[0][0].id(), id('d'));
        assert_eq!(images[3].len(), 2);
        assert_eq!(images[3][0].id(), id('a'));
    }

    #[test]
    fn summary_and_inspect_shapes() {
        let catalog = catalog();
        let image = catalog.image(&id('b'));
        let config = ConfigView::from_json(&json!({
            "created": "2024-05-01T12:00:00.5Z",
            "architecture": "arm64",
            "variant": "v8",
            "os": "linux",
            "config": {"Env": ["A=1"], "Labels": {"team": "x"}},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1", "sha256:2"]},
        }));
        let summary = summary_json(&image, &image, &config, ApiVersion::new(1, 50));
        assert_eq!(summary["Id"], id('b'));
        assert_eq!(
            summary["RepoTags"],
            json!(["127.0.0.1:5000/team/app:1.0", "local/app:2"])
        );
        assert_eq!(
            summary["RepoDigests"],
            json!([
                format!("127.0.0.1:5000/team/app@{}", id('b')),
                format!("local/app@{}", id('b'))
            ])
        );
        assert_eq!(summary["Created"], 1_714_564_800);
        assert_eq!(summary["Labels"], json!({"team": "x"}));
        assert_eq!(summary["Containers"], -1);
        assert_eq!(summary["SharedSize"], -1);
        assert!(summary.get("VirtualSize").is_none());
        assert_eq!(summary["Descriptor"]["digest"], id('b'));
        let old = summary_json(&image, &image[..1], &config, ApiVersion::new(1, 41));
        assert_eq!(old["VirtualSize"], 1000);
        assert!(old.get("Descriptor").is_none());
        assert_eq!(old["RepoTags"], json!(["127.0.0.1:5000/team/app:1.0"]));

        let inspect = inspect_json(&image, &config, "overlay", ApiVersion::new(1, 50));
        assert_eq!(inspect["Id"], id('b'));
        assert_eq!(
            inspect["RootFS"],
            json!({"Type": "layers", "Layers": ["sha256:1", "sha256:2"]})
        );
        assert_eq!(inspect["Architecture"], "arm64");
        assert_eq!(inspect["Variant"], "v8");
        assert_eq!(inspect["Created"], "2024-05-01T12:00:00.5Z");
        assert_eq!(inspect["Config"]["Env"], json!(["A=1"]));
        assert_eq!(inspect["Config"]["Cmd"], Value::Null);
        assert!(inspect["Config"].get("Hostname").is_none());
        assert_eq!(inspect["Metadata"]["LastTagTime"], "1970-01-01T00:00:45Z");
        let legacy = inspect_json(
            &image,
            &ConfigView::default(),
            "overlay",
            ApiVersion::new(1, 43),
        );
        assert_eq!(legacy["Config"]["Hostname"], "");
        assert_eq!(legacy["Created"], "0001-01-01T00:00:00Z");
        assert!(legacy["RootFS"].get("Layers").is_none());
    }

    #[test]
    fn times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00Z"), Some(1_714_564_800));
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00.123456789+02:00"),
            Some(1_714_564_800)
        );
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for bad in [
            "",
            "2024-05-01",
            "2024-13-01T00:00:00Z",
            "2024-05-01T00:00:00",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_714_564_800, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2024-05-01T12:00:00.12Z");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_nano(leap), "2000-02-29T00:00:00Z");
        assert_eq!(short(&id('a')), "a".repeat(12));
    }
}
