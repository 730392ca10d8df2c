//! The frame every page shares: viewport for phones, inline CSS, the operator's title.

use maud::{html, Markup, PreEscaped, DOCTYPE};

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1c1e21;line-height:1.45}
main{max-width:26rem;margin:0 auto;padding:1.5rem 1rem}
.card{background:#fff;border-radius:12px;padding:1.5rem;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.4rem;margin:0 0 .25rem}
p{margin:.5rem 0 1rem}
.muted{color:#4b4f56;font-size:.95rem}
label{display:block;font-weight:600;margin:1rem 0 .35rem}
input[type=text],input[type=password]{width:100%;font-size:1.05rem;padding:.75rem;border:1px solid #8a8d91;border-radius:8px}
input:focus,button:focus{outline:3px solid #1a5fb4;outline-offset:2px}
button{width:100%;font-size:1.05rem;padding:.8rem;margin-top:1.25rem;border-radius:8px;border:1px solid #1a5fb4;background:#1a5fb4;color:#fff;font-weight:600;cursor:pointer}
button.secondary{background:#fff;color:#1a5fb4;margin-top:.75rem}
.error{background:#fdecea;color:#8a1c10;border:1px solid #f5c2bd;border-radius:8px;padding:.75rem;margin:1rem 0}
.scope{font-family:ui-monospace,monospace;font-size:.9rem}
"#;

pub fn page(title: &str, heading: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (heading) " · " (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                main {
                    div class="card" {
                        p class="muted" { (title) }
                        h1 { (heading) }
                        (body)
                    }
                }
            }
        }
    }
}
