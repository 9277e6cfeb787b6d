// Runs in the app's page (a components.v2 component, not an iframe), given the token and the cookie's
// settings as data by studio/visitor.py. Writes the cookie (on https partitioned SameSite=None, which also
// works inside another site's iframe: Spaces), and reads it back: if it sticks, drops the token's address
// parameter at once; either way it tells the server (cookie_ok), once per session (a repeated report would
// rerun the script for nothing).
// The referrer meta: while the address holds the token, no request of the page may carry it as Referer
// (studio.serve's nginx sends the same policy as a header; plain `streamlit run` cannot send headers).
let reportedSession = null;
export default function (component) {
  const { token, session, cookie, maxAge, param } = component.data;
  if (!document.querySelector('meta[name="referrer"]')) {
    const meta = document.createElement("meta");
    meta.name = "referrer";
    meta.content = "no-referrer";
    document.head.appendChild(meta);
  }
  let attrs = "; Path=/; Max-Age=" + maxAge;
  attrs += location.protocol === "https:" ? "; SameSite=None; Secure; Partitioned" : "; SameSite=Lax";
  document.cookie = cookie + "=" + token + attrs;
  const works = document.cookie.split("; ").includes(cookie + "=" + token);
  const url = new URL(location.href);
  if (works && url.searchParams.has(param)) {
    url.searchParams.delete(param);
    history.replaceState(history.state, "", url);
  }
  if (reportedSession === session) return;
  reportedSession = session;
  component.setStateValue("cookie_ok", works);
}
