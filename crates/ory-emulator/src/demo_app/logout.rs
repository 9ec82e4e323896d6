//! The sign-out link. Ory's logout needs a one-time token, so an app asks Ory (through the
//! proxy, with the visitor's cookie) for a logout URL while it renders the page — the pattern
//! Ory documents — instead of offering a plain "/logout" that any other site could trigger.

use serde::Deserialize;

/// The part of Ory's `logoutFlow` answer the app needs.
#[derive(Deserialize)]
struct LogoutFlow {
    logout_url: String,
}

/// `GET <ory>/self-service/logout/browser?return_to=<return_to>` with the browser's `Cookie`
/// header. `ory_url` is the proxy's `/.ory` prefix, so the answer's URL is already rewritten
/// onto the proxy's public URL.
pub async fn logout_url(
    client: &awc::Client,
    ory_url: &str,
    cookie: &str,
    return_to: &str,
) -> Result<String, String> {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("return_to", return_to)
        .finish();
    let mut res = client
        .get(format!("{ory_url}/self-service/logout/browser?{query}"))
        .insert_header(("Cookie", cookie))
        .insert_header(("Accept", "application/json"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !res.status().is_success() {
        return Err(format!("Ory answered HTTP {}", res.status()));
    }
    let flow: LogoutFlow = res.json().await.map_err(|e| e.to_string())?;
    Ok(flow.logout_url)
}
