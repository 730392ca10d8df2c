//! A person's browser on `/account` (issue 15): a cookie jar, an optional Accept-Language, and
//! the page's forms submitted with their hidden fields, as `tests/account_page.rs` and
//! `tests/totp.rs` drive it.

use super::{Response, Server};
use std::collections::BTreeMap;

/// A browser on `/account`: a cookie jar, and forms found by their action.
pub struct Visitor<'a> {
    pub server: &'a Server,
    pub cookies: BTreeMap<String, String>,
    pub language: Option<&'a str>,
}

impl<'a> Visitor<'a> {
    pub fn new(server: &'a Server) -> Self {
        Visitor {
            server,
            cookies: BTreeMap::new(),
            language: None,
        }
    }

    fn headers(&self) -> Vec<(String, String)> {
        let mut headers = Vec::new();
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            headers.push(("Cookie".to_string(), jar.join("; ")));
        }
        if let Some(language) = self.language {
            headers.push(("Accept-Language".to_string(), language.to_string()));
        }
        headers
    }

    /// Remembers every `Set-Cookie` (an empty value deletes).
    fn keep(&mut self, response: &Response) {
        for (name, value) in &response.headers {
            if name.eq_ignore_ascii_case("set-cookie") {
                let pair = value.split(';').next().unwrap_or("");
                if let Some((k, v)) = pair.split_once('=') {
                    if v.is_empty() {
                        self.cookies.remove(k.trim());
                    } else {
                        self.cookies.insert(k.trim().to_string(), v.to_string());
                    }
                }
            }
        }
    }

    pub fn get(&mut self, path: &str) -> Response {
        let headers = self.headers();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let response = self.server.request("GET", path, &headers, b"");
        self.keep(&response);
        response
    }

    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Response {
        let headers = self.headers();
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let response = self.server.post_form(path, &headers, fields);
        self.keep(&response);
        response
    }

    /// Submits the form whose action ends with `action` on `page`, with its hidden fields.
    pub fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Response {
        let mut all = hidden_fields(page, action);
        all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let all: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.post(&format!("/account{action}"), &all)
    }

    /// Signs in with a username and password: the account page, or the refusal.
    pub fn sign_in(&mut self, username: &str, password: &str) -> Response {
        self.sign_in_with(&[("username", username), ("password", password)])
    }

    /// Signs in with these fields (username, password, and a two-factor `code`): the account
    /// page, or the refusal.
    pub fn sign_in_with(&mut self, fields: &[(&str, &str)]) -> Response {
        let page = self.get("/account").text();
        let response = self.submit(&page, "/sign-in", fields);
        if response.status == 303 {
            assert_eq!(response.header("Location"), Some("/account"));
            return self.get("/account");
        }
        response
    }
}

/// The hidden fields of the (first) form posting to `/account{action}` whose hidden `grant`,
/// if any, is not filtered out by the caller.
pub fn hidden_fields(page: &str, action: &str) -> Vec<(String, String)> {
    let marker = format!("action=\"/account{action}\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no form posting to {action} in {page}"));
    let end = page[start..].find("</form>").unwrap() + start;
    let form = &page[start..end];
    let mut fields = Vec::new();
    for tag in form.split("<input").skip(1) {
        let tag = &tag[..tag.find('>').unwrap()];
        if tag.contains("type=\"hidden\"") {
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                let at = tag.find(&key).unwrap() + key.len();
                tag[at..at + tag[at..].find('"').unwrap()].to_string()
            };
            fields.push((attr("name"), attr("value")));
        }
    }
    fields
}
