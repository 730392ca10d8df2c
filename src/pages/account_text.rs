//! The translations of the account pages (issue 15): the one-time password link's form today.
//! Kept apart from `i18n.rs` so the two catalogues change independently; same conventions:
//! `{user}` and `{n}` mark where values go, the rest is shown as written (and HTML-escaped).

use crate::lang::Lang;

/// The account pages' strings in `lang`.
pub fn account_text(lang: Lang) -> &'static AccountText {
    match lang {
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

pub struct AccountText {
    pub set_password_heading: &'static str,
    /// `{user}`: the username.
    pub set_password_intro: &'static str,
    pub username: &'static str,
    pub new_password: &'static str,
    pub repeat_password: &'static str,
    /// `{n}`: the minimum length.
    pub password_rule: &'static str,
    pub save_password: &'static str,
    pub password_empty: &'static str,
    /// `{n}`: the minimum length.
    pub password_too_short: &'static str,
    /// `{n}`: the maximum length.
    pub password_too_long: &'static str,
    pub passwords_differ: &'static str,
    pub link_dead_heading: &'static str,
    pub link_dead: &'static str,
    pub problem_heading: &'static str,
    pub form_stale: &'static str,
    pub busy: &'static str,
    pub unavailable: &'static str,
    pub password_set_heading: &'static str,
    /// `{user}`: the username.
    pub password_set: &'static str,
}

pub const EN: AccountText = AccountText {
    set_password_heading: "Choose your password",
    set_password_intro: "Choose the password for your account {user}. Only you will know it.",
    username: "Username",
    new_password: "New password",
    repeat_password: "Repeat the new password",
    password_rule: "At least {n} characters.",
    save_password: "Save password",
    password_empty: "Please enter a password.",
    password_too_short: "The password is too short: use at least {n} characters.",
    password_too_long: "The password is too long: use at most {n} characters.",
    passwords_differ: "The two passwords are not the same. Please type them again.",
    link_dead_heading: "This link no longer works",
    link_dead: "It was already used, it has expired, or a newer link replaced it. Please ask for a new link.",
    problem_heading: "Something went wrong",
    form_stale: "This form has expired. Please open your link again.",
    busy: "The server is busy right now. Please wait a moment and try again.",
    unavailable: "A temporary problem stopped this. Please try again in a moment.",
    password_set_heading: "Password saved",
    password_set: "The password for {user} is saved. You can now sign in with it from the app.",
};

pub const DE: AccountText = AccountText {
    set_password_heading: "Passwort festlegen",
    set_password_intro: "Legen Sie das Passwort für Ihr Konto {user} fest. Nur Sie werden es kennen.",
    username: "Benutzername",
    new_password: "Neues Passwort",
    repeat_password: "Neues Passwort wiederholen",
    password_rule: "Mindestens {n} Zeichen.",
    save_password: "Passwort speichern",
    password_empty: "Bitte geben Sie ein Passwort ein.",
    password_too_short: "Das Passwort ist zu kurz: Verwenden Sie mindestens {n} Zeichen.",
    password_too_long: "Das Passwort ist zu lang: Verwenden Sie höchstens {n} Zeichen.",
    passwords_differ: "Die beiden Passwörter stimmen nicht überein. Bitte geben Sie sie erneut ein.",
    link_dead_heading: "Dieser Link funktioniert nicht mehr",
    link_dead: "Er wurde bereits verwendet, ist abgelaufen oder wurde durch einen neueren Link ersetzt. Bitte fordern Sie einen neuen Link an.",
    problem_heading: "Etwas ist schiefgelaufen",
    form_stale: "Dieses Formular ist abgelaufen. Bitte öffnen Sie Ihren Link erneut.",
    busy: "Der Server ist gerade ausgelastet. Bitte warten Sie einen Moment und versuchen Sie es erneut.",
    unavailable: "Ein vorübergehendes Problem ist aufgetreten. Bitte versuchen Sie es gleich noch einmal.",
    password_set_heading: "Passwort gespeichert",
    password_set: "Das Passwort für {user} ist gespeichert. Sie können sich jetzt damit in der App anmelden.",
};

// French typography puts a no-break space (U+00A0) before `:`.
pub const FR: AccountText = AccountText {
    set_password_heading: "Choisir votre mot de passe",
    set_password_intro: "Choisissez le mot de passe de votre compte {user}. Vous seul le connaîtrez.",
    username: "Nom d’utilisateur",
    new_password: "Nouveau mot de passe",
    repeat_password: "Répétez le nouveau mot de passe",
    password_rule: "Au moins {n} caractères.",
    save_password: "Enregistrer le mot de passe",
    password_empty: "Veuillez saisir un mot de passe.",
    password_too_short: "Le mot de passe est trop court\u{a0}: utilisez au moins {n} caractères.",
    password_too_long: "Le mot de passe est trop long\u{a0}: utilisez au plus {n} caractères.",
    passwords_differ: "Les deux mots de passe ne sont pas identiques. Veuillez les saisir à nouveau.",
    link_dead_heading: "Ce lien ne fonctionne plus",
    link_dead: "Il a déjà été utilisé, il a expiré ou un lien plus récent l’a remplacé. Veuillez demander un nouveau lien.",
    problem_heading: "Une erreur s’est produite",
    form_stale: "Ce formulaire a expiré. Veuillez rouvrir votre lien.",
    busy: "Le serveur est occupé. Veuillez patienter un instant, puis réessayer.",
    unavailable: "Un problème temporaire a empêché l’opération. Veuillez réessayer dans un instant.",
    password_set_heading: "Mot de passe enregistré",
    password_set: "Le mot de passe de {user} est enregistré. Vous pouvez maintenant vous connecter avec lui depuis l’application.",
};

pub const ES: AccountText = AccountText {
    set_password_heading: "Elige tu contraseña",
    set_password_intro: "Elige la contraseña de tu cuenta {user}. Solo tú la conocerás.",
    username: "Nombre de usuario",
    new_password: "Nueva contraseña",
    repeat_password: "Repite la nueva contraseña",
    password_rule: "Al menos {n} caracteres.",
    save_password: "Guardar contraseña",
    password_empty: "Introduce una contraseña.",
    password_too_short: "La contraseña es demasiado corta: usa al menos {n} caracteres.",
    password_too_long: "La contraseña es demasiado larga: usa como máximo {n} caracteres.",
    passwords_differ: "Las dos contraseñas no coinciden. Escríbelas de nuevo.",
    link_dead_heading: "Este enlace ya no funciona",
    link_dead: "Ya se usó, caducó o lo sustituyó un enlace más reciente. Pide un enlace nuevo.",
    problem_heading: "Algo salió mal",
    form_stale: "Este formulario ha caducado. Vuelve a abrir tu enlace.",
    busy: "El servidor está ocupado en este momento. Espera un momento y vuelve a intentarlo.",
    unavailable: "Un problema temporal lo ha impedido. Vuelve a intentarlo en un momento.",
    password_set_heading: "Contraseña guardada",
    password_set: "La contraseña de {user} está guardada. Ya puedes iniciar sesión con ella desde la aplicación.",
};

pub const IT: AccountText = AccountText {
    set_password_heading: "Scegli la tua password",
    set_password_intro: "Scegli la password del tuo account {user}. La conoscerai solo tu.",
    username: "Nome utente",
    new_password: "Nuova password",
    repeat_password: "Ripeti la nuova password",
    password_rule: "Almeno {n} caratteri.",
    save_password: "Salva password",
    password_empty: "Inserisci una password.",
    password_too_short: "La password è troppo corta: usa almeno {n} caratteri.",
    password_too_long: "La password è troppo lunga: usa al massimo {n} caratteri.",
    passwords_differ: "Le due password non coincidono. Digitale di nuovo.",
    link_dead_heading: "Questo link non funziona più",
    link_dead: "È già stato usato, è scaduto oppure è stato sostituito da un link più recente. Chiedi un nuovo link.",
    problem_heading: "Si è verificato un problema",
    form_stale: "Questo modulo è scaduto. Apri di nuovo il tuo link.",
    busy: "Il server è occupato in questo momento. Attendi un istante e riprova.",
    unavailable: "Un problema temporaneo lo ha impedito. Riprova tra un momento.",
    password_set_heading: "Password salvata",
    password_set: "La password di {user} è stata salvata. Ora puoi accedere con essa dall’app.",
};

pub const JA: AccountText = AccountText {
    set_password_heading: "パスワードの設定",
    set_password_intro: "アカウント {user} のパスワードを決めてください。パスワードを知るのはあなただけです。",
    username: "ユーザー名",
    new_password: "新しいパスワード",
    repeat_password: "新しいパスワード(確認)",
    password_rule: "{n} 文字以上。",
    save_password: "パスワードを保存",
    password_empty: "パスワードを入力してください。",
    password_too_short: "パスワードが短すぎます。{n} 文字以上にしてください。",
    password_too_long: "パスワードが長すぎます。{n} 文字以下にしてください。",
    passwords_differ: "2 つのパスワードが一致しません。もう一度入力してください。",
    link_dead_heading: "このリンクは使用できません",
    link_dead: "すでに使用されたか、有効期限が切れたか、新しいリンクに置き換えられました。新しいリンクを依頼してください。",
    problem_heading: "問題が発生しました",
    form_stale: "このフォームの有効期限が切れました。リンクをもう一度開いてください。",
    busy: "サーバーが混み合っています。しばらく待ってから、もう一度お試しください。",
    unavailable: "一時的な問題により完了できませんでした。しばらくしてから、もう一度お試しください。",
    password_set_heading: "パスワードを保存しました",
    password_set: "{user} のパスワードを保存しました。アプリからこのパスワードでサインインできます。",
};

pub const PT_BR: AccountText = AccountText {
    set_password_heading: "Escolha sua senha",
    set_password_intro: "Escolha a senha da sua conta {user}. Só você vai conhecê-la.",
    username: "Nome de usuário",
    new_password: "Nova senha",
    repeat_password: "Repita a nova senha",
    password_rule: "Pelo menos {n} caracteres.",
    save_password: "Salvar senha",
    password_empty: "Digite uma senha.",
    password_too_short: "A senha é curta demais: use pelo menos {n} caracteres.",
    password_too_long: "A senha é longa demais: use no máximo {n} caracteres.",
    passwords_differ: "As duas senhas não são iguais. Digite-as novamente.",
    link_dead_heading: "Este link não funciona mais",
    link_dead:
        "Ele já foi usado, expirou ou foi substituído por um link mais recente. Peça um novo link.",
    problem_heading: "Algo deu errado",
    form_stale: "Este formulário expirou. Abra seu link novamente.",
    busy: "O servidor está ocupado no momento. Aguarde um instante e tente novamente.",
    unavailable: "Um problema temporário impediu a operação. Tente novamente em instantes.",
    password_set_heading: "Senha salva",
    password_set: "A senha de {user} foi salva. Agora você pode entrar com ela pelo aplicativo.",
};

pub const HI: AccountText = AccountText {
    set_password_heading: "अपना पासवर्ड चुनें",
    set_password_intro: "अपने खाते {user} के लिए पासवर्ड चुनें। इसे सिर्फ़ आप जानेंगे।",
    username: "उपयोगकर्ता नाम",
    new_password: "नया पासवर्ड",
    repeat_password: "नया पासवर्ड दोबारा लिखें",
    password_rule: "कम से कम {n} अक्षर।",
    save_password: "पासवर्ड सहेजें",
    password_empty: "कृपया पासवर्ड लिखें।",
    password_too_short: "पासवर्ड बहुत छोटा है: कम से कम {n} अक्षर रखें।",
    password_too_long: "पासवर्ड बहुत लंबा है: ज़्यादा से ज़्यादा {n} अक्षर रखें।",
    passwords_differ: "दोनों पासवर्ड एक जैसे नहीं हैं। कृपया उन्हें फिर से लिखें।",
    link_dead_heading: "यह लिंक अब काम नहीं करता",
    link_dead: "इसका उपयोग हो चुका है, इसकी समय-सीमा खत्म हो गई है, या किसी नए लिंक ने इसकी जगह ले ली है। कृपया नया लिंक माँगें।",
    problem_heading: "कुछ गड़बड़ हो गई",
    form_stale: "इस फ़ॉर्म की समय-सीमा खत्म हो गई है। कृपया अपना लिंक फिर से खोलें।",
    busy: "सर्वर अभी व्यस्त है। कृपया थोड़ी देर रुककर फिर से कोशिश करें।",
    unavailable: "एक अस्थायी समस्या के कारण यह नहीं हो सका। कृपया थोड़ी देर में फिर से कोशिश करें।",
    password_set_heading: "पासवर्ड सहेजा गया",
    password_set: "{user} का पासवर्ड सहेज लिया गया है। अब आप ऐप से इसके साथ साइन इन कर सकते हैं।",
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every language fills the same slots as English, so no value goes missing in translation.
    #[test]
    fn every_translation_keeps_the_slots() {
        let slots = |s: &str| {
            let mut found: Vec<String> = s
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_string()))
                .collect();
            found.sort();
            found
        };
        let fields = |t: &AccountText| {
            [
                t.set_password_intro,
                t.password_rule,
                t.password_too_short,
                t.password_too_long,
                t.password_set,
            ]
        };
        for lang in Lang::ALL {
            let text = account_text(lang);
            for (ours, english) in fields(text).iter().zip(fields(&EN)) {
                assert_eq!(slots(ours), slots(english), "{lang:?}: {ours}");
            }
        }
    }
}
