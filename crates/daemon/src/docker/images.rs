//! `GET /images/json`, `GET /images/{name}/json`, `POST
//! /images/{name}/tag` and `DELETE /images/{name}` over the engine's image
//! records.
//!
//! The engine's image calls read SQLite and the disk, so each request runs
//! them on a blocking thread, reading the records once into a
//! [`Catalog`] and each image's config from the content store.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hoist_engine::Engine;
use hoist_oci::{Platform, PlatformMatcher, Reference};
use serde_json::json;

use super::catalog::{self, Catalog, ConfigView, Record, Removal};
use super::error::ApiError;
use super::filters::{FilterError, ImageFilters};
use super::names;
use super::version::ApiVersion;
use crate::service::Service;

/// Runs `work` on a blocking thread with the engine.
async fn blocking<T: Send + 'static>(
    service: &Service,
    work: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = service.engine().clone();
    tokio::task::spawn_blocking(move || work(&engine)).await?
}

/// An engine failure as docker's error.
fn engine_error(error: hoist_engine::Error) -> ApiError {
    match error {
        hoist_engine::Error::ImageNotFound(name) => {
            let shown = Reference::parse(&name).map_or(name, |r| r.familiar());
            catalog::no_such_image(&shown)
        }
        hoist_engine::Error::Oci(error) => ApiError::bad_request(error.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// Every record the engine holds, as docker sees them.
fn read_catalog(engine: &Engine) -> Result<(Catalog, HashMap<String, Vec<String>>), ApiError> {
    let mut records = Vec::new();
    let mut unpacked = HashMap::new();
    for image in engine.images().map_err(engine_error)? {
        // A name that no longer parses (written by another version) has no
        // docker form; leave it out rather than fail the listing.
        let Ok(reference) = Reference::parse(&image.name) else {
            continue;
        };
        unpacked.insert(image.name.clone(), image.unpacked.clone());
        records.push(Record {
            name: image.name,
            reference,
            target: image.target,
            size: image.size,
            created_at: image.created_at,
            updated_at: image.updated_at,
        });
    }
    Ok((Catalog::new(records), unpacked))
}

/// The config of the image named `name`, for this machine's platform when
/// the record holds several; empty when it is not stored.
fn config_view(engine: &Engine, name: &str) -> ConfigView {
    let Ok(details) = engine.inspect_image(name) else {
        return ConfigView::default();
    };
    let host = PlatformMatcher::only(Platform::host());
    let rank = |platform: Option<&str>| {
        platform
            .and_then(|p| Platform::parse(p).ok())
            .and_then(|p| host.rank(&p))
            .unwrap_or(usize::MAX)
    };
    let Some(manifest) = details
        .manifests
        .iter()
        .filter(|m| m.config_stored)
        .min_by_key(|m| rank(m.platform.as_deref()))
    else {
        return ConfigView::default();
    };
    engine
        .content()
        .read_blob(manifest.config.digest(), engine.max_manifest_size())
        .ok()
        .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok())
        .map(|config| ConfigView::from_json(&config))
        .unwrap_or_default()
}

/// docker's boolean query values (`1`, `true`, `True`…; anything else but
/// `0`, `false`, `none` and the empty string is true).
fn query_bool(query: &HashMap<String, String>, key: &str) -> bool {
    query.get(key).is_some_and(|v| {
        !matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "" | "0" | "false" | "no" | "none"
        )
    })
}

/// `GET /images/json`.
pub async fn list(
    service: &Service,
    version: ApiVersion,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filters =
        ImageFilters::parse(query.get("filters").map_or("", String::as_str)).map_err(|error| {
            match error {
                FilterError::Invalid(message) => ApiError::bad_request(message),
                FilterError::Unsupported(message) => ApiError::not_implemented(message),
            }
        })?;
    let summaries = blocking(service, move |engine| {
        let (catalog, _) = read_catalog(engine)?;
        let mut summaries = Vec::new();
        for image in catalog.images() {
            let shown: Vec<&Record> = if filters.reference.is_empty() {
                image.clone()
            } else {
                image
                    .iter()
                    .filter(|r| {
                        filters
                            .reference
                            .iter()
                            .any(|pattern| names::familiar_match(pattern, &r.reference))
                    })
                    .copied()
                    .collect()
            };
            if shown.is_empty() {
                continue;
            }
            let tagged = image.iter().any(|r| r.reference.tag().is_some());
            if filters.dangling.is_some_and(|dangling| dangling == tagged) {
                continue;
            }
            let config = config_view(engine, &image[0].name);
            if !filters.labels_match(&config.labels) {
                continue;
            }
            summaries.push(catalog::summary_json(&image, &shown, &config, version));
        }
        Ok(summaries)
    })
    .await?;
    Ok(axum::Json(summaries).into_response())
}

/// `GET /images/{name}/json`.
pub async fn inspect(
    service: &Service,
    version: ApiVersion,
    name: &str,
) -> Result<Response, ApiError> {
    let name = name.to_string();
    let default_driver = service
        .config()
        .snapshotter
        .clone()
        .unwrap_or_else(|| "overlay".to_string());
    let inspect = blocking(service, move |engine| {
        let (catalog, unpacked) = read_catalog(engine)?;
        let found = catalog.lookup(&name)?;
        let image = catalog.image(&found.record.id());
        let config = config_view(engine, &found.record.name);
        // The snapshotter the image is unpacked in stands for docker's
        // graph driver.
        let driver = unpacked
            .get(&found.record.name)
            .and_then(|u| u.first().cloned())
            .unwrap_or(default_driver);
        Ok(catalog::inspect_json(&image, &config, &driver, version))
    })
    .await?;
    Ok(axum::Json(inspect).into_response())
}

/// `POST /images/{name}/tag?repo=&tag=`: 201 and no body, as moby.
pub async fn tag(
    service: &Service,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let get = |key: &str| query.get(key).map_or("", String::as_str);
    let destination = names::repo_tag(get("repo"), get("tag")).map_err(ApiError::bad_request)?;
    let name = name.to_string();
    blocking(service, move |engine| {
        let (catalog, _) = read_catalog(engine)?;
        let found = catalog.lookup(&name)?;
        engine
            .tag_image(&found.record.name, &destination.to_string())
            .map_err(engine_error)?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// `DELETE /images/{name}?force=`: docker's list of `Untagged` and
/// `Deleted` entries. Removing a record prunes the snapshots no image
/// needs; the blobs go at the garbage collection this asks for.
pub async fn remove(
    service: &Service,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let force = query_bool(query, "force");
    let name = name.to_string();
    let entries = blocking(service, move |engine| {
        let (catalog, _) = read_catalog(engine)?;
        let (names, deleted) = match catalog.plan_removal(&name, force)? {
            Removal::Untag(names) => (names, None),
            Removal::Delete { names, id } => (names, Some(id)),
        };
        let mut entries = Vec::new();
        for record in names {
            match engine.remove_image(&record) {
                Ok(_) => {}
                // Removed meanwhile by another client: the outcome stands.
                Err(hoist_engine::Error::ImageNotFound(_)) => {}
                Err(error) => return Err(engine_error(error)),
            }
            let shown = Reference::parse(&record).map_or(record, |r| r.familiar());
            entries.push(json!({ "Untagged": shown }));
        }
        if let Some(id) = deleted {
            entries.push(json!({ "Deleted": id }));
        }
        Ok(entries)
    })
    .await?;
    service.collect_garbage_soon();
    Ok(axum::Json(entries).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_as_docker_reads_them() {
        let query = |v: &str| HashMap::from([("force".to_string(), v.to_string())]);
        for yes in ["1", "true", "True", "yes"] {
            assert!(query_bool(&query(yes), "force"), "{yes}");
        }
        for no in ["", "0", "false", "FALSE", "none"] {
            assert!(!query_bool(&query(no), "force"), "{no}");
        }
        assert!(!query_bool(&HashMap::new(), "force"));
    }
}
