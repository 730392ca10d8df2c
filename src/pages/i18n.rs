//! The translations of the customer-facing pages.
//!
//! Alexa and Google open the login page in the app's web view on the customer's phone, in every
//! market they sell in; the page should speak the customer's language. The catalogue is plain
//! data (one `Text` per language, `{name}` marks where a value goes) so a translator can read and
//! correct it without knowing Rust. Which language a request gets is decided in `crate::base::lang`.

use crate::base::lang::Lang;
pub use crate::base::lang::{choose, from_accept_language};

impl Lang {
    /// The language's strings.
    pub fn text(self) -> &'static Text {
        match self {
            Lang::En => &EN,
            Lang::De => &DE,
            Lang::Fr => &FR,
            Lang::Es => &ES,
            Lang::It => &IT,
            Lang::Ja => &JA,
            Lang::PtBr => &PT_BR,
            Lang::Hi => &HI,
        }
    }
}

/// Every string on the login, consent and error pages. `{client}`, `{user}`, `{n}` and `{param}`
/// mark where values go; everything else is shown as written (and HTML-escaped).
pub struct Text {
    // login page
    pub sign_in_heading: &'static str,
    /// `{client}`: the client's name.
    pub sign_in_intro: &'static str,
    pub username: &'static str,
    /// The same field when the operator's login API takes an email address.
    pub email: &'static str,
    pub password: &'static str,
    pub sign_in_button: &'static str,
    pub wrong_credentials: &'static str,
    pub locked_one_minute: &'static str,
    /// `{n}`: minutes, at least 2.
    pub locked_minutes: &'static str,
    pub busy: &'static str,
    /// The login API could not check the password; the form is shown again.
    pub login_unavailable: &'static str,
    // consent page
    pub consent_heading: &'static str,
    /// `{client}`: the client's name; `{user}`: the username.
    pub consent_intro: &'static str,
    pub requested_access: &'static str,
    pub unlink_anytime: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
    // error page
    pub error_heading: &'static str,
    pub error_advice: &'static str,
    /// `{reference}`: the refusal's reference id, for the app's support and the operator's log.
    pub error_reference: &'static str,
    pub link_not_utf8: &'static str,
    /// `{param}`: a parameter name such as `client_id`.
    pub link_repeated: &'static str,
    /// `{param}`: a parameter name such as `client_id`.
    pub link_missing: &'static str,
    pub unknown_client: &'static str,
    pub unregistered_redirect_uri: &'static str,
    pub form_not_utf8: &'static str,
    pub form_incomplete: &'static str,
    pub form_expired: &'static str,
    pub client_gone: &'static str,
    pub sign_in_unavailable: &'static str,
    pub linking_unavailable: &'static str,
    /// The account was removed or its password changed while the consent page was open.
    pub sign_in_again: &'static str,
}

pub const EN: Text = Text {
    sign_in_heading: "Sign in",
    sign_in_intro: "Enter your username and password to link your account with {client}.",
    username: "Username",
    email: "Email",
    password: "Password",
    sign_in_button: "Sign in",
    wrong_credentials: "Wrong username or password. Please try again.",
    locked_one_minute: "Too many failed sign-ins. Please try again in a minute.",
    locked_minutes: "Too many failed sign-ins. Please try again in {n} minutes.",
    busy: "Too many sign-ins right now. Please wait a moment and try again.",
    login_unavailable: "Sign-in is unavailable right now. Please try again in a moment.",
    consent_heading: "Link your account?",
    consent_intro: "{client} wants to access your account {user}.",
    requested_access: "Requested access:",
    unlink_anytime: "You can unlink at any time from the app.",
    allow: "Allow",
    deny: "Deny",
    error_heading: "Something went wrong",
    error_advice: "Close this page and start linking again from the app. If it keeps happening, contact the app's support.",
    error_reference: "Reference: {reference}",
    link_not_utf8: "This link is malformed (its parameters are not valid UTF-8).",
    link_repeated: "This link is malformed: {param} appears more than once.",
    link_missing: "This link is incomplete: it has no {param}.",
    unknown_client: "This link names an application that is not registered here.",
    unregistered_redirect_uri: "This link asks to return to an address that is not registered for the application.",
    form_not_utf8: "The form could not be read (it is not valid UTF-8).",
    form_incomplete: "The form is incomplete. Please start linking again from the app.",
    form_expired: "This page has expired or was already used. Please start linking again from the app.",
    client_gone: "This application is no longer registered here.",
    sign_in_unavailable: "A temporary problem stopped the sign-in. Please try again in a moment.",
    linking_unavailable: "A temporary problem stopped the linking. Please try again from the app.",
    sign_in_again: "Your account changed since you signed in (its password was changed or it was removed). Please sign in again from the app.",
};

pub const DE: Text = Text {
    sign_in_heading: "Anmelden",
    sign_in_intro: "Geben Sie Ihren Benutzernamen und Ihr Passwort ein, um Ihr Konto mit {client} zu verknüpfen.",
    username: "Benutzername",
    email: "E-Mail",
    password: "Passwort",
    sign_in_button: "Anmelden",
    wrong_credentials: "Benutzername oder Passwort ist falsch. Bitte versuchen Sie es erneut.",
    locked_one_minute: "Zu viele fehlgeschlagene Anmeldeversuche. Bitte versuchen Sie es in einer Minute erneut.",
    locked_minutes: "Zu viele fehlgeschlagene Anmeldeversuche. Bitte versuchen Sie es in {n} Minuten erneut.",
    busy: "Gerade melden sich zu viele Personen an. Bitte warten Sie einen Moment und versuchen Sie es dann erneut.",
    login_unavailable: "Die Anmeldung ist gerade nicht möglich. Bitte versuchen Sie es gleich noch einmal.",
    consent_heading: "Konto verknüpfen?",
    consent_intro: "{client} möchte auf Ihr Konto {user} zugreifen.",
    requested_access: "Angefragter Zugriff:",
    unlink_anytime: "Sie können die Verknüpfung jederzeit in der App aufheben.",
    allow: "Zulassen",
    deny: "Ablehnen",
    error_heading: "Etwas ist schiefgelaufen",
    error_advice: "Schließen Sie diese Seite und starten Sie die Verknüpfung erneut in der App. Wenn das Problem bestehen bleibt, wenden Sie sich an den Support der App.",
    error_reference: "Referenz: {reference}",
    link_not_utf8: "Dieser Link ist fehlerhaft (seine Parameter sind kein gültiges UTF-8).",
    link_repeated: "Dieser Link ist fehlerhaft: {param} kommt mehr als einmal vor.",
    link_missing: "Dieser Link ist unvollständig: {param} fehlt.",
    unknown_client: "Dieser Link nennt eine Anwendung, die hier nicht registriert ist.",
    unregistered_redirect_uri: "Dieser Link führt zurück zu einer Adresse, die für die Anwendung nicht registriert ist.",
    form_not_utf8: "Das Formular konnte nicht gelesen werden (es ist kein gültiges UTF-8).",
    form_incomplete: "Das Formular ist unvollständig. Bitte starten Sie die Verknüpfung erneut in der App.",
    form_expired: "Diese Seite ist abgelaufen oder wurde bereits verwendet. Bitte starten Sie die Verknüpfung erneut in der App.",
    client_gone: "Diese Anwendung ist hier nicht mehr registriert.",
    sign_in_unavailable: "Ein vorübergehendes Problem hat die Anmeldung verhindert. Bitte versuchen Sie es gleich noch einmal.",
    linking_unavailable: "Ein vorübergehendes Problem hat die Verknüpfung verhindert. Bitte versuchen Sie es in der App erneut.",
    sign_in_again: "Ihr Konto hat sich seit der Anmeldung geändert (Passwort geändert oder Konto entfernt). Bitte melden Sie sich in der App erneut an.",
};

// French typography puts a no-break space (U+00A0) before `?` and `:`.
pub const FR: Text = Text {
    sign_in_heading: "Connexion",
    sign_in_intro: "Saisissez votre nom d’utilisateur et votre mot de passe pour associer votre compte à {client}.",
    username: "Nom d’utilisateur",
    email: "E-mail",
    password: "Mot de passe",
    sign_in_button: "Se connecter",
    wrong_credentials: "Nom d’utilisateur ou mot de passe incorrect. Veuillez réessayer.",
    locked_one_minute: "Trop de tentatives de connexion ont échoué. Veuillez réessayer dans une minute.",
    locked_minutes: "Trop de tentatives de connexion ont échoué. Veuillez réessayer dans {n} minutes.",
    busy: "Trop de connexions en ce moment. Veuillez patienter un instant, puis réessayer.",
    login_unavailable: "La connexion est momentanément indisponible. Veuillez réessayer dans un instant.",
    consent_heading: "Associer votre compte\u{a0}?",
    consent_intro: "{client} souhaite accéder à votre compte {user}.",
    requested_access: "Accès demandé\u{a0}:",
    unlink_anytime: "Vous pouvez dissocier votre compte à tout moment depuis l’application.",
    allow: "Autoriser",
    deny: "Refuser",
    error_heading: "Une erreur s’est produite",
    error_advice: "Fermez cette page et relancez l’association depuis l’application. Si le problème persiste, contactez l’assistance de l’application.",
    error_reference: "Référence : {reference}",
    link_not_utf8: "Ce lien est mal formé (ses paramètres ne sont pas en UTF-8 valide).",
    link_repeated: "Ce lien est mal formé\u{a0}: {param} apparaît plus d’une fois.",
    link_missing: "Ce lien est incomplet\u{a0}: il manque {param}.",
    unknown_client: "Ce lien désigne une application qui n’est pas enregistrée ici.",
    unregistered_redirect_uri: "Ce lien demande un retour vers une adresse qui n’est pas enregistrée pour l’application.",
    form_not_utf8: "Le formulaire n’a pas pu être lu (il n’est pas en UTF-8 valide).",
    form_incomplete: "Le formulaire est incomplet. Veuillez relancer l’association depuis l’application.",
    form_expired: "Cette page a expiré ou a déjà été utilisée. Veuillez relancer l’association depuis l’application.",
    client_gone: "Cette application n’est plus enregistrée ici.",
    sign_in_unavailable: "Un problème temporaire a empêché la connexion. Veuillez réessayer dans un instant.",
    linking_unavailable: "Un problème temporaire a empêché l’association. Veuillez réessayer depuis l’application.",
    sign_in_again: "Votre compte a changé depuis votre connexion (mot de passe modifié ou compte supprimé). Veuillez vous reconnecter depuis l’application.",
};

pub const ES: Text = Text {
    sign_in_heading: "Iniciar sesión",
    sign_in_intro: "Introduce tu nombre de usuario y tu contraseña para vincular tu cuenta con {client}.",
    username: "Nombre de usuario",
    email: "Correo electrónico",
    password: "Contraseña",
    sign_in_button: "Iniciar sesión",
    wrong_credentials: "El nombre de usuario o la contraseña no son correctos. Inténtalo de nuevo.",
    locked_one_minute: "Demasiados intentos fallidos de inicio de sesión. Vuelve a intentarlo dentro de un minuto.",
    locked_minutes: "Demasiados intentos fallidos de inicio de sesión. Vuelve a intentarlo dentro de {n} minutos.",
    busy: "Hay demasiados inicios de sesión en este momento. Espera un poco y vuelve a intentarlo.",
    login_unavailable: "El inicio de sesión no está disponible ahora mismo. Vuelve a intentarlo en un momento.",
    consent_heading: "¿Vincular tu cuenta?",
    consent_intro: "{client} quiere acceder a tu cuenta {user}.",
    requested_access: "Acceso solicitado:",
    unlink_anytime: "Puedes desvincular tu cuenta en cualquier momento desde la aplicación.",
    allow: "Permitir",
    deny: "Denegar",
    error_heading: "Algo ha salido mal",
    error_advice: "Cierra esta página y vuelve a iniciar la vinculación desde la aplicación. Si sigue ocurriendo, ponte en contacto con el soporte de la aplicación.",
    error_reference: "Referencia: {reference}",
    link_not_utf8: "Este enlace no es válido (sus parámetros no están en UTF-8 válido).",
    link_repeated: "Este enlace no es válido: {param} aparece más de una vez.",
    link_missing: "Este enlace está incompleto: falta {param}.",
    unknown_client: "Este enlace indica una aplicación que no está registrada aquí.",
    unregistered_redirect_uri: "Este enlace pide volver a una dirección que no está registrada para la aplicación.",
    form_not_utf8: "No se ha podido leer el formulario (no está en UTF-8 válido).",
    form_incomplete: "El formulario está incompleto. Vuelve a iniciar la vinculación desde la aplicación.",
    form_expired: "Esta página ha caducado o ya se ha usado. Vuelve a iniciar la vinculación desde la aplicación.",
    client_gone: "Esta aplicación ya no está registrada aquí.",
    sign_in_unavailable: "Un problema temporal ha impedido iniciar sesión. Vuelve a intentarlo en un momento.",
    linking_unavailable: "Un problema temporal ha impedido la vinculación. Vuelve a intentarlo desde la aplicación.",
    sign_in_again: "Tu cuenta ha cambiado desde que iniciaste sesión (se cambió la contraseña o se eliminó). Vuelve a iniciar sesión desde la aplicación.",
};

pub const IT: Text = Text {
    sign_in_heading: "Accedi",
    sign_in_intro: "Inserisci nome utente e password per collegare il tuo account a {client}.",
    username: "Nome utente",
    email: "Email",
    password: "Password",
    sign_in_button: "Accedi",
    wrong_credentials: "Nome utente o password errati. Riprova.",
    locked_one_minute: "Troppi tentativi di accesso non riusciti. Riprova tra un minuto.",
    locked_minutes: "Troppi tentativi di accesso non riusciti. Riprova tra {n} minuti.",
    busy: "Troppi accessi in questo momento. Attendi qualche istante e riprova.",
    login_unavailable: "L’accesso non è disponibile in questo momento. Riprova tra qualche istante.",
    consent_heading: "Collegare il tuo account?",
    consent_intro: "{client} vuole accedere al tuo account {user}.",
    requested_access: "Accesso richiesto:",
    unlink_anytime: "Puoi scollegare l’account in qualsiasi momento dall’app.",
    allow: "Consenti",
    deny: "Nega",
    error_heading: "Si è verificato un problema",
    error_advice: "Chiudi questa pagina e avvia di nuovo il collegamento dall’app. Se il problema persiste, contatta l’assistenza dell’app.",
    error_reference: "Riferimento: {reference}",
    link_not_utf8: "Questo link non è valido (i suoi parametri non sono in UTF-8 valido).",
    link_repeated: "Questo link non è valido: {param} compare più di una volta.",
    link_missing: "Questo link è incompleto: manca {param}.",
    unknown_client: "Questo link indica un’applicazione che non è registrata qui.",
    unregistered_redirect_uri: "Questo link chiede di tornare a un indirizzo che non è registrato per l’applicazione.",
    form_not_utf8: "Impossibile leggere il modulo (non è in UTF-8 valido).",
    form_incomplete: "Il modulo è incompleto. Avvia di nuovo il collegamento dall’app.",
    form_expired: "Questa pagina è scaduta o è già stata usata. Avvia di nuovo il collegamento dall’app.",
    client_gone: "Questa applicazione non è più registrata qui.",
    sign_in_unavailable: "Un problema temporaneo ha impedito l’accesso. Riprova tra qualche istante.",
    linking_unavailable: "Un problema temporaneo ha impedito il collegamento. Riprova dall’app.",
    sign_in_again: "Il tuo account è cambiato dall’accesso (password cambiata o account rimosso). Accedi di nuovo dall’app.",
};

pub const JA: Text = Text {
    sign_in_heading: "ログイン",
    sign_in_intro: "{client} とアカウントを連携するには、ユーザー名とパスワードを入力してください。",
    username: "ユーザー名",
    email: "メールアドレス",
    password: "パスワード",
    sign_in_button: "ログイン",
    wrong_credentials: "ユーザー名またはパスワードが正しくありません。もう一度お試しください。",
    locked_one_minute: "ログインの失敗が多すぎます。1分後にもう一度お試しください。",
    locked_minutes: "ログインの失敗が多すぎます。{n}分後にもう一度お試しください。",
    busy: "現在ログインが集中しています。しばらく待ってからもう一度お試しください。",
    login_unavailable: "現在ログインできません。しばらくしてからもう一度お試しください。",
    consent_heading: "アカウントを連携しますか？",
    consent_intro: "{client} があなたのアカウント {user} へのアクセスを求めています。",
    requested_access: "要求されているアクセス権：",
    unlink_anytime: "連携はアプリからいつでも解除できます。",
    allow: "許可する",
    deny: "拒否する",
    error_heading: "問題が発生しました",
    error_advice: "このページを閉じて、アプリからもう一度連携を始めてください。問題が解決しない場合は、アプリのサポートにお問い合わせください。",
    error_reference: "参照番号: {reference}",
    link_not_utf8: "このリンクの形式が正しくありません（パラメーターが有効な UTF-8 ではありません）。",
    link_repeated: "このリンクの形式が正しくありません：{param} が複数回含まれています。",
    link_missing: "このリンクは不完全です：{param} がありません。",
    unknown_client: "このリンクで指定されたアプリケーションは、ここに登録されていません。",
    unregistered_redirect_uri: "このリンクの戻り先アドレスは、このアプリケーションに登録されていません。",
    form_not_utf8: "フォームを読み取れませんでした（有効な UTF-8 ではありません）。",
    form_incomplete: "フォームが不完全です。アプリからもう一度連携を始めてください。",
    form_expired: "このページは有効期限が切れているか、すでに使用されています。アプリからもう一度連携を始めてください。",
    client_gone: "このアプリケーションは、ここでの登録が解除されています。",
    sign_in_unavailable: "一時的な問題によりログインできませんでした。しばらくしてからもう一度お試しください。",
    linking_unavailable: "一時的な問題により連携できませんでした。アプリからもう一度お試しください。",
    sign_in_again: "サインイン後にアカウントが変更されました（パスワードの変更または削除）。アプリからもう一度サインインしてください。",
};

pub const PT_BR: Text = Text {
    sign_in_heading: "Entrar",
    sign_in_intro: "Digite seu nome de usuário e sua senha para vincular sua conta a {client}.",
    username: "Nome de usuário",
    email: "E-mail",
    password: "Senha",
    sign_in_button: "Entrar",
    wrong_credentials: "Nome de usuário ou senha incorretos. Tente novamente.",
    locked_one_minute: "Muitas tentativas de login sem sucesso. Tente novamente em um minuto.",
    locked_minutes: "Muitas tentativas de login sem sucesso. Tente novamente em {n} minutos.",
    busy: "Há muitos acessos no momento. Aguarde um pouco e tente novamente.",
    login_unavailable: "O login está indisponível no momento. Tente novamente em instantes.",
    consent_heading: "Vincular sua conta?",
    consent_intro: "{client} quer acessar sua conta {user}.",
    requested_access: "Acesso solicitado:",
    unlink_anytime: "Você pode desvincular sua conta a qualquer momento pelo app.",
    allow: "Permitir",
    deny: "Negar",
    error_heading: "Algo deu errado",
    error_advice: "Feche esta página e comece a vinculação novamente pelo app. Se o problema continuar, entre em contato com o suporte do app.",
    error_reference: "Referência: {reference}",
    link_not_utf8: "Este link está malformado (seus parâmetros não são UTF-8 válido).",
    link_repeated: "Este link está malformado: {param} aparece mais de uma vez.",
    link_missing: "Este link está incompleto: falta {param}.",
    unknown_client: "Este link indica um aplicativo que não está registrado aqui.",
    unregistered_redirect_uri: "Este link pede para voltar a um endereço que não está registrado para o aplicativo.",
    form_not_utf8: "Não foi possível ler o formulário (ele não é UTF-8 válido).",
    form_incomplete: "O formulário está incompleto. Comece a vinculação novamente pelo app.",
    form_expired: "Esta página expirou ou já foi usada. Comece a vinculação novamente pelo app.",
    client_gone: "Este aplicativo não está mais registrado aqui.",
    sign_in_unavailable: "Um problema temporário impediu o login. Tente novamente em instantes.",
    linking_unavailable: "Um problema temporário impediu a vinculação. Tente novamente pelo app.",
    sign_in_again: "Sua conta mudou desde que você entrou (a senha foi alterada ou a conta foi removida). Entre novamente pelo app.",
};

pub const HI: Text = Text {
    sign_in_heading: "साइन इन करें",
    sign_in_intro: "{client} से अपना खाता लिंक करने के लिए अपना उपयोगकर्ता नाम और पासवर्ड डालें।",
    username: "उपयोगकर्ता नाम",
    email: "ईमेल",
    password: "पासवर्ड",
    sign_in_button: "साइन इन करें",
    wrong_credentials: "उपयोगकर्ता नाम या पासवर्ड गलत है। कृपया फिर से कोशिश करें।",
    locked_one_minute: "साइन इन के बहुत ज़्यादा प्रयास असफल रहे। कृपया एक मिनट बाद फिर से कोशिश करें।",
    locked_minutes: "साइन इन के बहुत ज़्यादा प्रयास असफल रहे। कृपया {n} मिनट बाद फिर से कोशिश करें।",
    busy: "इस समय बहुत ज़्यादा लोग साइन इन कर रहे हैं। कृपया थोड़ी देर रुककर फिर से कोशिश करें।",
    login_unavailable: "इस समय साइन इन उपलब्ध नहीं है। कृपया थोड़ी देर बाद फिर से कोशिश करें।",
    consent_heading: "अपना खाता लिंक करें?",
    consent_intro: "{client} आपके खाते {user} को ऐक्सेस करना चाहता है।",
    requested_access: "माँगी गई अनुमति:",
    unlink_anytime: "आप ऐप से कभी भी खाते का लिंक हटा सकते हैं।",
    allow: "अनुमति दें",
    deny: "अस्वीकार करें",
    error_heading: "कुछ गलत हो गया",
    error_advice: "यह पेज बंद करें और ऐप से फिर से लिंक करना शुरू करें। अगर यह समस्या बनी रहे, तो ऐप की सहायता टीम से संपर्क करें।",
    error_reference: "संदर्भ: {reference}",
    link_not_utf8: "यह लिंक सही नहीं है (इसके पैरामीटर मान्य UTF-8 नहीं हैं)।",
    link_repeated: "यह लिंक सही नहीं है: {param} एक से ज़्यादा बार आया है।",
    link_missing: "यह लिंक अधूरा है: इसमें {param} नहीं है।",
    unknown_client: "इस लिंक में बताया गया ऐप्लिकेशन यहाँ रजिस्टर नहीं है।",
    unregistered_redirect_uri: "यह लिंक ऐसे पते पर लौटना चाहता है जो इस ऐप्लिकेशन के लिए रजिस्टर नहीं है।",
    form_not_utf8: "फ़ॉर्म पढ़ा नहीं जा सका (यह मान्य UTF-8 नहीं है)।",
    form_incomplete: "फ़ॉर्म अधूरा है। कृपया ऐप से फिर से लिंक करना शुरू करें।",
    form_expired: "इस पेज की समय-सीमा खत्म हो गई है या इसका पहले ही इस्तेमाल हो चुका है। कृपया ऐप से फिर से लिंक करना शुरू करें।",
    client_gone: "यह ऐप्लिकेशन अब यहाँ रजिस्टर नहीं है।",
    sign_in_unavailable: "किसी अस्थायी समस्या की वजह से साइन इन नहीं हो सका। कृपया थोड़ी देर बाद फिर से कोशिश करें।",
    linking_unavailable: "किसी अस्थायी समस्या की वजह से खाता लिंक नहीं हो सका। कृपया ऐप से फिर से कोशिश करें।",
    sign_in_again: "साइन इन करने के बाद आपका खाता बदल गया है (पासवर्ड बदला गया या खाता हटाया गया)। कृपया ऐप से फिर से साइन इन करें।",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_fills_every_string() {
        for lang in Lang::ALL {
            let t = lang.text();
            assert_eq!(Lang::from_tag(lang.code()), Some(lang));
            for s in [
                t.sign_in_heading,
                t.username,
                t.email,
                t.password,
                t.sign_in_button,
                t.wrong_credentials,
                t.locked_one_minute,
                t.busy,
                t.login_unavailable,
                t.consent_heading,
                t.requested_access,
                t.unlink_anytime,
                t.allow,
                t.deny,
                t.error_heading,
                t.error_advice,
                t.link_not_utf8,
                t.unknown_client,
                t.unregistered_redirect_uri,
                t.form_not_utf8,
                t.form_incomplete,
                t.form_expired,
                t.client_gone,
                t.sign_in_unavailable,
                t.linking_unavailable,
                t.sign_in_again,
            ] {
                assert!(!s.is_empty() && !s.contains('{'), "{lang:?}: {s}");
            }
            assert!(t.sign_in_intro.contains("{client}"), "{lang:?}");
            assert!(t.error_reference.contains("{reference}"), "{lang:?}");
            assert!(t.consent_intro.contains("{client}") && t.consent_intro.contains("{user}"));
            assert!(t.locked_minutes.contains("{n}"), "{lang:?}");
            assert!(t.link_repeated.contains("{param}") && t.link_missing.contains("{param}"));
            if lang != Lang::En {
                assert_ne!(t.wrong_credentials, EN.wrong_credentials, "{lang:?}");
                assert_ne!(t.allow, EN.allow, "{lang:?}");
                assert_ne!(t.login_unavailable, EN.login_unavailable, "{lang:?}");
            }
        }
    }
}
