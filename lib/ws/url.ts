/** A URL safe to log or put in an error: no userinfo, no query (tokens live there). */
export function redactUrl(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}
