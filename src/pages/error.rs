//! The page for a request we cannot send back to the client (unknown client, unregistered
//! redirect URI, an expired form): the customer reads what happened instead of being redirected.

use super::layout::page;
use maud::{html, Markup};

pub fn error(title: &str, message: &str) -> Markup {
    page(
        title,
        "Something went wrong",
        html! {
            div class="error" role="alert" { (message) }
            p class="muted" { "Close this page and start linking again from the app. If it keeps happening, contact the app's support." }
        },
    )
}
