//! The translations of two-factor sign-in (issue 15): the code page of the authorization flow and
//! the `/account` section. Kept apart from `i18n.rs` and `account_text.rs` so the catalogues
//! change independently; plain strings, HTML-escaped when shown.

use crate::base::lang::Lang;

/// Two-factor sign-in's strings in `lang`.
pub fn totp_text(lang: Lang) -> &'static TotpText {
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

pub struct TotpText {
    pub heading: &'static str,
    pub code_intro: &'static str,
    pub code_label: &'static str,
    pub continue_button: &'static str,
    pub wrong_code: &'static str,
    /// The optional field of the `/account` sign-in form.
    pub sign_in_code_label: &'static str,
    pub is_on: &'static str,
    pub is_off: &'static str,
    pub turn_on: &'static str,
    pub turn_off: &'static str,
    pub turn_off_label: &'static str,
    pub enrol_intro: &'static str,
    /// Above the enrolment page of the authorization flow (`require_totp`).
    pub required_intro: &'static str,
    pub key_label: &'static str,
    pub confirm_label: &'static str,
    pub recovery_heading: &'static str,
    pub recovery_intro: &'static str,
    pub back: &'static str,
    pub turned_off_notice: &'static str,
    pub ev_on: &'static str,
    pub ev_off: &'static str,
}

static EN: TotpText = TotpText {
    heading: "Two-factor sign-in",
    code_intro: "Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
    code_label: "Code",
    continue_button: "Continue",
    wrong_code: "That code is not right. Enter the code your app shows now.",
    sign_in_code_label: "Code from your authenticator app (only if two-factor sign-in is on)",
    is_on: "Two-factor sign-in is on: signing in needs a code from your authenticator app.",
    is_off: "Two-factor sign-in is off.",
    turn_on: "Turn on two-factor sign-in",
    turn_off: "Turn off two-factor sign-in",
    turn_off_label: "Current code or a recovery code",
    enrol_intro: "Scan this QR code with your authenticator app, or type the key into it. Then enter the code the app shows.",
    required_intro: "This service requires two-factor sign-in. Set it up now to continue.",
    key_label: "Key",
    confirm_label: "Code from the app",
    recovery_heading: "Your recovery codes",
    recovery_intro: "Two-factor sign-in is on. Keep these recovery codes somewhere safe: each works once, instead of a code, if you lose your phone. They are shown only now.",
    back: "Back to your account",
    turned_off_notice: "Two-factor sign-in is off.",
    ev_on: "Two-factor sign-in turned on",
    ev_off: "Two-factor sign-in turned off",
};

static DE: TotpText = TotpText {
    heading: "Zwei-Faktor-Anmeldung",
    code_intro: "Geben Sie den 6-stelligen Code aus Ihrer Authenticator-App oder einen Ihrer Wiederherstellungscodes ein.",
    code_label: "Code",
    continue_button: "Weiter",
    wrong_code: "Dieser Code stimmt nicht. Geben Sie den Code ein, den Ihre App jetzt anzeigt.",
    sign_in_code_label: "Code aus Ihrer Authenticator-App (nur bei aktiver Zwei-Faktor-Anmeldung)",
    is_on: "Die Zwei-Faktor-Anmeldung ist aktiv: Zum Anmelden ist ein Code aus Ihrer Authenticator-App nötig.",
    is_off: "Die Zwei-Faktor-Anmeldung ist aus.",
    turn_on: "Zwei-Faktor-Anmeldung einschalten",
    turn_off: "Zwei-Faktor-Anmeldung ausschalten",
    turn_off_label: "Aktueller Code oder ein Wiederherstellungscode",
    enrol_intro: "Scannen Sie diesen QR-Code mit Ihrer Authenticator-App oder geben Sie den Schlüssel dort ein. Geben Sie dann den Code ein, den die App anzeigt.",
    required_intro: "Dieser Dienst verlangt die Zwei-Faktor-Anmeldung. Richten Sie sie jetzt ein, um fortzufahren.",
    key_label: "Schlüssel",
    confirm_label: "Code aus der App",
    recovery_heading: "Ihre Wiederherstellungscodes",
    recovery_intro: "Die Zwei-Faktor-Anmeldung ist aktiv. Bewahren Sie diese Codes sicher auf: Jeder gilt einmal anstelle eines Codes, falls Sie Ihr Telefon verlieren. Sie werden nur jetzt angezeigt.",
    back: "Zurück zu Ihrem Konto",
    turned_off_notice: "Die Zwei-Faktor-Anmeldung ist aus.",
    ev_on: "Zwei-Faktor-Anmeldung eingeschaltet",
    ev_off: "Zwei-Faktor-Anmeldung ausgeschaltet",
};

static FR: TotpText = TotpText {
    heading: "Connexion à deux facteurs",
    code_intro: "Saisissez le code à 6 chiffres de votre application d’authentification, ou l’un de vos codes de secours.",
    code_label: "Code",
    continue_button: "Continuer",
    wrong_code: "Ce code n’est pas correct. Saisissez le code que votre application affiche maintenant.",
    sign_in_code_label: "Code de votre application d’authentification (seulement si la connexion à deux facteurs est activée)",
    is_on: "La connexion à deux facteurs est activée : la connexion demande un code de votre application d’authentification.",
    is_off: "La connexion à deux facteurs est désactivée.",
    turn_on: "Activer la connexion à deux facteurs",
    turn_off: "Désactiver la connexion à deux facteurs",
    turn_off_label: "Code actuel ou code de secours",
    enrol_intro: "Scannez ce code QR avec votre application d’authentification, ou saisissez-y la clé. Saisissez ensuite le code affiché par l’application.",
    required_intro: "Ce service exige la connexion à deux facteurs. Configurez-la maintenant pour continuer.",
    key_label: "Clé",
    confirm_label: "Code de l’application",
    recovery_heading: "Vos codes de secours",
    recovery_intro: "La connexion à deux facteurs est activée. Gardez ces codes en lieu sûr : chacun remplace une fois un code si vous perdez votre téléphone. Ils ne sont affichés que maintenant.",
    back: "Retour à votre compte",
    turned_off_notice: "La connexion à deux facteurs est désactivée.",
    ev_on: "Connexion à deux facteurs activée",
    ev_off: "Connexion à deux facteurs désactivée",
};

static ES: TotpText = TotpText {
    heading: "Inicio de sesión en dos pasos",
    code_intro: "Introduce el código de 6 dígitos de tu aplicación de autenticación o uno de tus códigos de recuperación.",
    code_label: "Código",
    continue_button: "Continuar",
    wrong_code: "Ese código no es correcto. Introduce el código que muestra ahora tu aplicación.",
    sign_in_code_label: "Código de tu aplicación de autenticación (solo si el inicio de sesión en dos pasos está activado)",
    is_on: "El inicio de sesión en dos pasos está activado: para iniciar sesión se necesita un código de tu aplicación de autenticación.",
    is_off: "El inicio de sesión en dos pasos está desactivado.",
    turn_on: "Activar el inicio de sesión en dos pasos",
    turn_off: "Desactivar el inicio de sesión en dos pasos",
    turn_off_label: "Código actual o un código de recuperación",
    enrol_intro: "Escanea este código QR con tu aplicación de autenticación o escribe en ella la clave. Después introduce el código que muestra la aplicación.",
    required_intro: "Este servicio exige el inicio de sesión en dos pasos. Configúralo ahora para continuar.",
    key_label: "Clave",
    confirm_label: "Código de la aplicación",
    recovery_heading: "Tus códigos de recuperación",
    recovery_intro: "El inicio de sesión en dos pasos está activado. Guarda estos códigos en un lugar seguro: cada uno sirve una vez en lugar de un código si pierdes el teléfono. Solo se muestran ahora.",
    back: "Volver a tu cuenta",
    turned_off_notice: "El inicio de sesión en dos pasos está desactivado.",
    ev_on: "Inicio de sesión en dos pasos activado",
    ev_off: "Inicio de sesión en dos pasos desactivado",
};

static IT: TotpText = TotpText {
    heading: "Accesso a due fattori",
    code_intro: "Inserisci il codice a 6 cifre della tua app di autenticazione oppure uno dei tuoi codici di recupero.",
    code_label: "Codice",
    continue_button: "Continua",
    wrong_code: "Il codice non è corretto. Inserisci il codice che la tua app mostra adesso.",
    sign_in_code_label: "Codice della tua app di autenticazione (solo se l’accesso a due fattori è attivo)",
    is_on: "L’accesso a due fattori è attivo: per accedere serve un codice della tua app di autenticazione.",
    is_off: "L’accesso a due fattori non è attivo.",
    turn_on: "Attiva l’accesso a due fattori",
    turn_off: "Disattiva l’accesso a due fattori",
    turn_off_label: "Codice attuale o un codice di recupero",
    enrol_intro: "Scansiona questo codice QR con la tua app di autenticazione o inserisci la chiave. Poi inserisci il codice mostrato dall’app.",
    required_intro: "Questo servizio richiede l’accesso a due fattori. Configuralo ora per continuare.",
    key_label: "Chiave",
    confirm_label: "Codice dell’app",
    recovery_heading: "I tuoi codici di recupero",
    recovery_intro: "L’accesso a due fattori è attivo. Conserva questi codici in un posto sicuro: ognuno vale una volta al posto di un codice se perdi il telefono. Vengono mostrati solo ora.",
    back: "Torna al tuo account",
    turned_off_notice: "L’accesso a due fattori non è attivo.",
    ev_on: "Accesso a due fattori attivato",
    ev_off: "Accesso a due fattori disattivato",
};

static JA: TotpText = TotpText {
    heading: "2 段階認証",
    code_intro: "認証アプリに表示された 6 桁のコード、またはリカバリーコードのいずれかを入力してください。",
    code_label: "コード",
    continue_button: "続ける",
    wrong_code: "コードが正しくありません。アプリに今表示されているコードを入力してください。",
    sign_in_code_label: "認証アプリのコード（2 段階認証がオンの場合のみ）",
    is_on: "2 段階認証はオンです。サインインには認証アプリのコードが必要です。",
    is_off: "2 段階認証はオフです。",
    turn_on: "2 段階認証をオンにする",
    turn_off: "2 段階認証をオフにする",
    turn_off_label: "現在のコードまたはリカバリーコード",
    enrol_intro: "認証アプリでこの QR コードを読み取るか、キーを入力してください。次に、アプリに表示されたコードを入力してください。",
    required_intro: "このサービスでは 2 段階認証が必要です。続けるには今すぐ設定してください。",
    key_label: "キー",
    confirm_label: "アプリのコード",
    recovery_heading: "リカバリーコード",
    recovery_intro: "2 段階認証がオンになりました。これらのコードは安全な場所に保管してください。電話をなくした場合、各コードはコードの代わりに 1 回だけ使えます。表示されるのは今回だけです。",
    back: "アカウントに戻る",
    turned_off_notice: "2 段階認証はオフです。",
    ev_on: "2 段階認証をオンにしました",
    ev_off: "2 段階認証をオフにしました",
};

static PT_BR: TotpText = TotpText {
    heading: "Login em duas etapas",
    code_intro: "Digite o código de 6 dígitos do seu aplicativo autenticador ou um dos seus códigos de recuperação.",
    code_label: "Código",
    continue_button: "Continuar",
    wrong_code: "Esse código não está certo. Digite o código que o aplicativo mostra agora.",
    sign_in_code_label: "Código do seu aplicativo autenticador (só se o login em duas etapas estiver ativado)",
    is_on: "O login em duas etapas está ativado: para entrar é preciso um código do seu aplicativo autenticador.",
    is_off: "O login em duas etapas está desativado.",
    turn_on: "Ativar o login em duas etapas",
    turn_off: "Desativar o login em duas etapas",
    turn_off_label: "Código atual ou um código de recuperação",
    enrol_intro: "Escaneie este QR code com seu aplicativo autenticador ou digite a chave nele. Depois digite o código que o aplicativo mostra.",
    required_intro: "Este serviço exige o login em duas etapas. Configure-o agora para continuar.",
    key_label: "Chave",
    confirm_label: "Código do aplicativo",
    recovery_heading: "Seus códigos de recuperação",
    recovery_intro: "O login em duas etapas está ativado. Guarde estes códigos em um lugar seguro: cada um vale uma vez no lugar de um código se você perder o celular. Eles só são mostrados agora.",
    back: "Voltar para sua conta",
    turned_off_notice: "O login em duas etapas está desativado.",
    ev_on: "Login em duas etapas ativado",
    ev_off: "Login em duas etapas desativado",
};

static HI: TotpText = TotpText {
    heading: "दो-चरणीय साइन-इन",
    code_intro: "अपने ऑथेंटिकेटर ऐप का 6 अंकों का कोड या अपना कोई रिकवरी कोड दर्ज करें।",
    code_label: "कोड",
    continue_button: "जारी रखें",
    wrong_code: "यह कोड सही नहीं है। आपका ऐप अभी जो कोड दिखा रहा है, वह दर्ज करें।",
    sign_in_code_label: "आपके ऑथेंटिकेटर ऐप का कोड (केवल तब, जब दो-चरणीय साइन-इन चालू हो)",
    is_on: "दो-चरणीय साइन-इन चालू है: साइन इन करने के लिए आपके ऑथेंटिकेटर ऐप का कोड चाहिए।",
    is_off: "दो-चरणीय साइन-इन बंद है।",
    turn_on: "दो-चरणीय साइन-इन चालू करें",
    turn_off: "दो-चरणीय साइन-इन बंद करें",
    turn_off_label: "मौजूदा कोड या कोई रिकवरी कोड",
    enrol_intro: "इस QR कोड को अपने ऑथेंटिकेटर ऐप से स्कैन करें या उसमें कुंजी टाइप करें। फिर ऐप में दिखा कोड दर्ज करें।",
    required_intro: "इस सेवा के लिए दो-चरणीय साइन-इन ज़रूरी है। जारी रखने के लिए इसे अभी सेट करें।",
    key_label: "कुंजी",
    confirm_label: "ऐप का कोड",
    recovery_heading: "आपके रिकवरी कोड",
    recovery_intro: "दो-चरणीय साइन-इन चालू है। इन कोड को सुरक्षित जगह रखें: फ़ोन खो जाने पर हर कोड एक बार कोड की जगह काम करता है। ये केवल अभी दिखाए जा रहे हैं।",
    back: "अपने खाते पर वापस जाएँ",
    turned_off_notice: "दो-चरणीय साइन-इन बंद है।",
    ev_on: "दो-चरणीय साइन-इन चालू किया गया",
    ev_off: "दो-चरणीय साइन-इन बंद किया गया",
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every language has every string, and translates it (the code label "Code" aside).
    #[test]
    fn every_language_translates_every_string() {
        let fields = |t: &'static TotpText| {
            [
                t.heading,
                t.code_intro,
                t.continue_button,
                t.wrong_code,
                t.sign_in_code_label,
                t.is_on,
                t.is_off,
                t.turn_on,
                t.turn_off,
                t.turn_off_label,
                t.enrol_intro,
                t.required_intro,
                t.key_label,
                t.confirm_label,
                t.recovery_heading,
                t.recovery_intro,
                t.back,
                t.turned_off_notice,
                t.ev_on,
                t.ev_off,
            ]
        };
        for lang in Lang::ALL {
            let text = totp_text(lang);
            assert!(!text.code_label.is_empty());
            for (ours, english) in fields(text).iter().zip(fields(&EN)) {
                assert!(!ours.is_empty(), "{lang:?}");
                if lang != Lang::En {
                    assert_ne!(ours, &english, "{lang:?} is untranslated");
                }
            }
        }
    }
}
