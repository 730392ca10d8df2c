//! The universal-link association files, from `[apps]`, so the app's universal link (where
//! Amazon sends the customer back) may live on linkgate's own host: Apple's
//! `apple-app-site-association` (iOS opens links under `/app/` in the app) and Android's
//! `assetlinks.json` (Digital Asset Links: the app may open this site's links).

use crate::config::Apps;
use serde_json::{json, Value};

/// The path prefix of universal links the apps open (`/app/alexa`, …).
const APP_PATHS: &str = "/app/*";

/// `apple-app-site-association`, when iOS apps are configured: each app in the iOS 13+
/// form (`appIDs`, `components`) and the older one (`appID`, `paths`), which Apple allows side by side.
pub fn apple_app_site_association(apps: &Apps, public_path: &str) -> Option<Value> {
    if apps.ios_app_ids.is_empty() {
        return None;
    }
    let paths = format!("{public_path}{APP_PATHS}");
    let details: Vec<Value> = apps
        .ios_app_ids
        .iter()
        .map(|id| {
            json!({
                "appIDs": [id],
                "components": [ { "/": paths } ],
                "appID": id,
                "paths": [paths],
            })
        })
        .collect();
    Some(json!({
        "applinks": { "apps": [], "details": details },
        "webcredentials": { "apps": apps.ios_app_ids },
    }))
}

/// `assetlinks.json`, when the Android app is configured.
pub fn asset_links(apps: &Apps) -> Option<Value> {
    let package = apps.android_package.as_ref()?;
    Some(json!([
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {
                "namespace": "android_app",
                "package_name": package,
                "sha256_cert_fingerprints": apps.android_cert_fingerprints,
            }
        }
    ]))
}
