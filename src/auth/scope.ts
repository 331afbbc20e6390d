/** RFC 6749 section 3.3 scope-token: printable ASCII except space, `"` and `\\`. */
export const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;
