//! The pages in the customer's language and the operator's branding, against the real binary:
//! language from `Accept-Language`, Google's `user_locale` and `[ui] language`; the accent
//! colour, logo and support line; and the config errors that keep bad branding out.

mod common;
use common::*;

/// The text inside the first `<tag ...>…</tag>`.
fn inner(html: &str, tag: &str) -> String {
    let open = format!("<{tag}");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no <{tag}> in {html}"));
    let body = start + html[start..].find('>').expect("tag end") + 1;
    let end = body
        + html[body..]
            .find(&format!("</{tag}>"))
            .expect("closing tag");
    html[body..end].to_string()
}

/// The texts of all `<button>`s, in document order.
fn buttons(html: &str) -> Vec<String> {
    html.split("<button")
        .skip(1)
        .map(|b| inner(&format!("<button{b}"), "button"))
        .collect()
}

fn html_lang(page: &Page) -> String {
    let start = page.html.find("<html lang=\"").expect("<html lang>") + 12;
    let end = start + page.html[start..].find('"').expect("quote");
    page.html[start..end].to_string()
}

/// The message of the `role="alert"` box.
fn alert(page: &Page) -> String {
    let at = page
        .html
        .find("role=\"alert\"")
        .unwrap_or_else(|| panic!("no alert: {}", page.html));
    let body = at + page.html[at..].find('>').expect("tag end") + 1;
    let end = body + page.html[body..].find("</div>").expect("div end");
    page.html[body..end].to_string()
}

struct Locale {
    accept_language: &'static str,
    lang: &'static str,
    sign_in: &'static str,
    sign_in_button: &'static str,
    username_label: &'static str,
    consent: &'static str,
    allow: &'static str,
    deny: &'static str,
    wrong_password: &'static str,
}

const LOCALES: [Locale; 8] = [
    Locale {
        accept_language: "en-US,en;q=0.9",
        lang: "en",
        sign_in: "Sign in",
        sign_in_button: "Sign in",
        username_label: "Username",
        consent: "Link your account?",
        allow: "Allow",
        deny: "Deny",
        wrong_password: "Wrong username or password. Please try again.",
    },
    Locale {
        accept_language: "de-DE,de;q=0.9,en;q=0.8",
        lang: "de",
        sign_in: "Anmelden",
        sign_in_button: "Anmelden",
        username_label: "Benutzername",
        consent: "Konto verknüpfen?",
        allow: "Zulassen",
        deny: "Ablehnen",
        wrong_password: "Benutzername oder Passwort ist falsch. Bitte versuchen Sie es erneut.",
    },
    Locale {
        accept_language: "fr-FR,fr;q=0.9,en;q=0.5",
        lang: "fr",
        sign_in: "Connexion",
        sign_in_button: "Se connecter",
        username_label: "Nom d’utilisateur",
        consent: "Associer votre compte\u{a0}?",
        allow: "Autoriser",
        deny: "Refuser",
        wrong_password: "Nom d’utilisateur ou mot de passe incorrect. Veuillez réessayer.",
    },
    Locale {
        accept_language: "es-ES,es;q=0.9",
        lang: "es",
        sign_in: "Iniciar sesión",
        sign_in_button: "Iniciar sesión",
        username_label: "Nombre de usuario",
        consent: "¿Vincular tu cuenta?",
        allow: "Permitir",
        deny: "Denegar",
        wrong_password:
            "El nombre de usuario o la contraseña no son correctos. Inténtalo de nuevo.",
    },
    Locale {
        accept_language: "it-IT,it;q=0.9",
        lang: "it",
        sign_in: "Accedi",
        sign_in_button: "Accedi",
        username_label: "Nome utente",
        consent: "Collegare il tuo account?",
        allow: "Consenti",
        deny: "Nega",
        wrong_password: "Nome utente o password errati. Riprova.",
    },
    Locale {
        accept_language: "ja,en-US;q=0.7,en;q=0.3",
        lang: "ja",
        sign_in: "ログイン",
        sign_in_button: "ログイン",
        username_label: "ユーザー名",
        consent: "アカウントを連携しますか？",
        allow: "許可する",
        deny: "拒否する",
        wrong_password: "ユーザー名またはパスワードが正しくありません。もう一度お試しください。",
    },
    Locale {
        accept_language: "pt-BR,pt;q=0.9,en-US;q=0.8",
        lang: "pt-BR",
        sign_in: "Entrar",
        sign_in_button: "Entrar",
        username_label: "Nome de usuário",
        consent: "Vincular sua conta?",
        allow: "Permitir",
        deny: "Negar",
        wrong_password: "Nome de usuário ou senha incorretos. Tente novamente.",
    },
    Locale {
        accept_language: "hi-IN,hi;q=0.9,en-IN;q=0.8",
        lang: "hi",
        sign_in: "साइन इन करें",
        sign_in_button: "साइन इन करें",
        username_label: "उपयोगकर्ता नाम",
        consent: "अपना खाता लिंक करें?",
        allow: "अनुमति दें",
        deny: "अस्वीकार करें",
        wrong_password: "उपयोगकर्ता नाम या पासवर्ड गलत है। कृपया फिर से कोशिश करें।",
    },
];

#[test]
fn each_language_is_picked_from_accept_language_through_login_and_consent() {
    let env = TestEnv::with_user();
    let server = env.start();
    for locale in &LOCALES {
        let mut phone = Browser::with_language(&server, Some(locale.accept_language));
        let login = phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[]);
        assert_eq!(login.status, 200, "{}", login.html);
        assert_eq!(html_lang(&login), locale.lang);
        assert_eq!(login.response.header("Content-Language"), Some(locale.lang));
        assert_eq!(inner(&login.html, "h1"), locale.sign_in, "{}", locale.lang);
        assert_eq!(buttons(&login.html), [locale.sign_in_button]);
        assert!(
            login.html.contains(&format!(
                "<label for=\"username\">{}</label>",
                locale.username_label
            )),
            "{}",
            login.html
        );
        let title = inner(&login.html, "title");
        assert_eq!(title, format!("{} · Example Taxi", locale.sign_in));

        let again = phone.login(&login, USER, "not the password");
        assert_eq!(again.status, 401);
        assert_eq!(alert(&again), locale.wrong_password);
        assert_eq!(html_lang(&again), locale.lang);

        let consent = phone.login(&again, USER, PASSWORD);
        assert_eq!(consent.status, 200, "{}", consent.html);
        assert_eq!(html_lang(&consent), locale.lang);
        assert_eq!(inner(&consent.html, "h1"), locale.consent);
        // Allow comes first, for keyboards and screen readers.
        assert_eq!(buttons(&consent.html), [locale.allow, locale.deny]);
        assert!(consent.html.contains("Example Taxi for Alexa"));

        let redirect = phone.submit(&consent, &[("decision", "allow")]);
        assert_eq!(redirect.status, 303, "{}", locale.lang);
        assert!(redirect.response.location_params().contains_key("code"));
    }
}

fn login_lang(server: &Server, accept_language: Option<&str>) -> String {
    html_lang(&Browser::with_language(server, accept_language).authorize(
        ALEXA_ID,
        ALEXA_REDIRECT,
        "st",
        &[],
    ))
}

#[test]
fn q_values_decide_not_the_order_written() {
    let env = TestEnv::new();
    let server = env.start();
    assert_eq!(
        login_lang(&server, Some("en;q=0.3, it;q=0.9, de;q=0.5")),
        "it"
    );
    assert_eq!(login_lang(&server, Some("es;q=0.2, ja")), "ja");
    assert_eq!(login_lang(&server, Some("fr;q=0, de;q=0.1")), "de");
    assert_eq!(login_lang(&server, Some("ko, *;q=0.5")), "en");
}

#[test]
fn regional_variants_fall_back_to_the_language() {
    let env = TestEnv::new();
    let server = env.start();
    for (header, lang) in [
        ("de-AT", "de"),
        ("de-CH,de;q=0.8", "de"),
        ("pt", "pt-BR"),
        ("pt-PT", "pt-BR"),
        ("es-MX", "es"),
        ("es-419", "es"),
        ("fr-CA", "fr"),
        ("en-IN", "en"),
        ("en-GB", "en"),
        ("ja-JP", "ja"),
        ("hi-IN", "hi"),
    ] {
        assert_eq!(login_lang(&server, Some(header)), lang, "{header}");
    }
}

#[test]
fn unknown_missing_or_hostile_headers_get_english() {
    let env = TestEnv::new();
    let server = env.start();
    assert_eq!(login_lang(&server, None), "en");
    assert_eq!(login_lang(&server, Some("zh-CN,zh;q=0.9,ko;q=0.8")), "en");
    assert_eq!(login_lang(&server, Some(";;;,,q=2,de;q=7")), "en");
    let huge = "x-klingon;q=0.9, ".repeat(2000) + "de";
    assert_eq!(login_lang(&server, Some(&huge)), "en");
    // Bytes that are not text: the header is unreadable, not fatal.
    let mut bytes = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAccept-Language: de",
        authorize_path(ALEXA_ID, ALEXA_REDIRECT, "st", &[])
    )
    .into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\r\n\r\n");
    let page = Page::from(raw(server.addr, &bytes).expect("response"));
    assert_eq!((page.status, html_lang(&page)), (200, "en".to_string()));
}

#[test]
fn googles_user_locale_beats_accept_language_and_lasts_to_the_consent_page() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut phone = Browser::with_language(&server, Some("fr-FR,fr;q=0.9"));
    let login = phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[("user_locale", "de_DE")]);
    assert_eq!(html_lang(&login), "de");
    assert_eq!(inner(&login.html, "h1"), "Anmelden");
    // The posts carry no user_locale; the choice travels with the pending authorization.
    let again = phone.login(&login, USER, "wrong password");
    assert_eq!(html_lang(&again), "de");
    let consent = phone.login(&again, USER, PASSWORD);
    assert_eq!(html_lang(&consent), "de");
    assert_eq!(buttons(&consent.html), ["Zulassen", "Ablehnen"]);

    // A locale we do not speak is no hint: Accept-Language decides.
    let mut phone = Browser::with_language(&server, Some("it"));
    assert_eq!(
        html_lang(&phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[("user_locale", "ko_KR")])),
        "it"
    );
    assert_eq!(
        html_lang(&phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[("user_locale", "pt_BR")])),
        "pt-BR"
    );
    // Rubbish in the parameter is ignored, not an error.
    let odd = phone.authorize(
        ALEXA_ID,
        ALEXA_REDIRECT,
        "st",
        &[("user_locale", "<script>")],
    );
    assert_eq!((odd.status, html_lang(&odd)), (200, "it".to_string()));
}

#[test]
fn error_pages_are_translated_too() {
    let env = TestEnv::new();
    let server = env.start();
    let mut phone = Browser::with_language(&server, Some("ja-JP"));
    let unknown = phone.open(&authorize_path("no-such-client", ALEXA_REDIRECT, "s", &[]));
    assert_eq!(unknown.status, 400);
    assert!(unknown.response.header("Location").is_none());
    assert_eq!(html_lang(&unknown), "ja");
    assert_eq!(inner(&unknown.html, "h1"), "問題が発生しました");
    assert_eq!(
        alert(&unknown),
        "このリンクで指定されたアプリケーションは、ここに登録されていません。"
    );

    let mut phone = Browser::with_language(&server, Some("es"));
    let evil = phone.open(&authorize_path(
        ALEXA_ID,
        "https://evil.example/cb",
        "s",
        &[],
    ));
    assert_eq!(evil.status, 400);
    assert_eq!(
        alert(&evil),
        "Este enlace pide volver a una dirección que no está registrada para la aplicación."
    );
    let missing = phone.open("/authorize?response_type=code");
    assert_eq!(
        alert(&missing),
        "Este enlace está incompleto: falta <code>client_id</code>."
    );

    // An expired or forged form, in the language of the post.
    let mut phone = Browser::with_language(&server, Some("hi"));
    let login = phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[]);
    let forged = Page {
        hidden: vec![
            ("request".into(), "nope".into()),
            ("csrf".into(), "nope".into()),
        ],
        ..login
    };
    let expired = phone.submit(&forged, &[("username", USER), ("password", "x")]);
    assert_eq!(expired.status, 400);
    assert_eq!(html_lang(&expired), "hi");
    assert!(alert(&expired).starts_with("इस पेज की समय-सीमा खत्म हो गई है"));

    // user_locale counts on an error page as well.
    let mut phone = Browser::with_language(&server, Some("en"));
    let hinted = phone.open(&authorize_path(
        "no-such-client",
        ALEXA_REDIRECT,
        "s",
        &[("user_locale", "it_IT")],
    ));
    assert_eq!(html_lang(&hinted), "it");
    assert_eq!(inner(&hinted.html, "h1"), "Si è verificato un problema");
}

#[test]
fn a_lockout_is_explained_in_the_customers_language() {
    let env = TestEnv::with_user();
    let server = env.start();
    let mut phone = Browser::with_language(&server, Some("de"));
    let mut page = phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[]);
    for _ in 0..6 {
        page = phone.login(&page, USER, "wrong password");
        assert_eq!(page.status, 401, "{}", page.html);
    }
    let locked = phone.login(&page, USER, PASSWORD);
    assert_eq!(locked.status, 429, "{}", locked.html);
    assert_eq!(
        alert(&locked),
        "Zu viele fehlgeschlagene Anmeldeversuche. Bitte versuchen Sie es in einer Minute erneut."
    );
}

#[test]
fn the_configured_language_overrides_browser_and_hint() {
    let env = TestConfig::new().set("ui.language", "ja").env();
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let mut phone = Browser::with_language(&server, Some("de-DE,de"));
    let login = phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[("user_locale", "fr_FR")]);
    assert_eq!(html_lang(&login), "ja");
    assert_eq!(inner(&login.html, "h1"), "ログイン");
    let consent = phone.login(&login, USER, PASSWORD);
    assert_eq!(html_lang(&consent), "ja");
    assert_eq!(buttons(&consent.html), ["許可する", "拒否する"]);
}

const LOGO: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" id="taxi-logo"><rect width="24" height="24" fill="#0b6e4f"/></svg>
"##;

#[test]
fn branding_shows_on_every_page() {
    let env = TestConfig::new()
        .set("ui.accent_color", "#0B6E4F")
        .set("ui.logo", "brand/logo.svg")
        .set("ui.support", "Help: help@example.com")
        .env();
    std::fs::create_dir(env.dir.path().join("brand")).expect("mkdir");
    std::fs::write(env.dir.path().join("brand/logo.svg"), LOGO).expect("logo");
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let mut phone = Browser::with_language(&server, None);
    let login = phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[]);
    let consent = phone.login(&login, USER, PASSWORD);
    let error = phone.open(&authorize_path("nobody", ALEXA_REDIRECT, "s", &[]));
    for page in [&login, &consent, &error] {
        assert!(inner(&page.html, "title").ends_with(" · Example Taxi"));
        assert!(page.html.contains("--accent:#0b6e4f"), "{}", page.html);
        assert!(!page.html.contains("--accent:#1a5fb4"));
        // Inlined, without the XML prolog, hidden from screen readers (the title says it all).
        assert!(page.html.contains(
            "<div class=\"logo\" aria-hidden=\"true\"><svg xmlns=\"http://www.w3.org/2000/svg\""
        ));
        assert!(page.html.contains("id=\"taxi-logo\""));
        assert!(!page.html.contains("<?xml"));
        assert!(page.html.contains("Help: help@example.com"));
        assert!(!page.html.contains("<script"));
        // Still no external assets: the CSP needs no change for the inline SVG.
        let csp = page.response.expect_header("Content-Security-Policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
    }
    // The support line sits after the form, where a stuck customer looks.
    assert!(login.html.find("Help: help@").unwrap() > login.html.find("</form>").unwrap());
}

#[test]
fn operator_and_client_strings_are_escaped() {
    let env = TestConfig::new()
        .set("ui.title", "<b>Taxi</b> & \"Co\"")
        .set(
            "ui.support",
            "<img src=x onerror=alert(1)> help@example.com",
        )
        .client(ALEXA_ID, "name", "<script>alert('client')</script>")
        .env();
    env.add_user(USER, PASSWORD);
    let server = env.start();
    let mut phone = Browser::with_language(&server, Some("fr"));
    let login = phone.authorize(ALEXA_ID, ALEXA_REDIRECT, "st", &[]);
    assert_eq!(login.status, 200, "{}", login.html);
    // What the customer typed comes back in the field, escaped.
    let typed = "\"><script>alert(1)</script>";
    let again = phone.submit(&login, &[("username", typed), ("password", "x")]);
    assert_eq!(again.status, 401);
    assert!(again
        .html
        .contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));
    // The field is marked invalid and points at the message.
    assert!(again.html.contains("aria-invalid=\"true\""));
    assert!(again.html.contains("aria-describedby=\"login-error\""));
    let consent = phone.login(&again, USER, PASSWORD);
    assert_eq!(consent.status, 200, "{}", consent.html);
    for page in [&login, &again, &consent] {
        let html = &page.html;
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("<b>Taxi"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;b&gt;Taxi&lt;/b&gt; &amp; &quot;Co&quot;"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt; help@example.com"));
        assert!(html.contains("<strong>&lt;script&gt;alert('client')&lt;/script&gt;</strong>"));
    }
}

/// `--check-config` on a config with `ui.key = value`; the failure's stderr.
fn config_error(key: &str, value: &str, setup: impl FnOnce(&std::path::Path)) -> String {
    let env = TestConfig::new().set(&format!("ui.{key}"), value).env();
    setup(env.dir.path());
    let out = env.cli(&["--check-config"], "");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("linkgate.toml"), "{stderr}");
    stderr
}

#[test]
fn bad_branding_is_refused_naming_the_key() {
    let low = config_error("accent_color", "#7fb3ff", |_| {});
    assert!(low.contains("key `ui.accent_color`"), "{low}");
    assert!(low.contains("4.5:1") && low.contains("contrast"), "{low}");
    let not_colour = config_error("accent_color", "teal", |_| {});
    assert!(not_colour.contains("#rrggbb"), "{not_colour}");

    let missing = config_error("logo", "nope.svg", |_| {});
    assert!(
        missing.contains("key `ui.logo`") && missing.contains("nope.svg"),
        "{missing}"
    );
    let big = config_error("logo", "big.svg", |dir| {
        let svg = format!("<svg>{}</svg>", "<g/>".repeat(20_000));
        std::fs::write(dir.join("big.svg"), svg).expect("write");
    });
    assert!(
        big.contains("key `ui.logo`") && big.contains("64 KiB"),
        "{big}"
    );
    let png = config_error("logo", "logo.png", |dir| {
        std::fs::write(dir.join("logo.png"), b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").expect("write");
    });
    assert!(png.contains("not an SVG"), "{png}");
    let scripted = config_error("logo", "logo.svg", |dir| {
        let svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"></svg>";
        std::fs::write(dir.join("logo.svg"), svg).expect("write");
    });
    assert!(scripted.contains("onload="), "{scripted}");

    let language = config_error("language", "tlh", |_| {});
    assert!(language.contains("key `ui.language`"), "{language}");
    assert!(
        language.contains("en, de, fr, es, it, ja, pt-BR, hi"),
        "{language}"
    );

    let typo = config_error("accent_colour", "#0b6e4f", |_| {});
    assert!(typo.contains("accent_colour"), "{typo}");

    // The server itself refuses to start with them, too.
    let env = TestConfig::new().set("ui.accent_color", "#ffffff").env();
    let out = env.cli(&[], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ui.accent_color"));
}
