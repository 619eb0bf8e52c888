/**
 * A fake managed-identity token endpoint (the App Service flow: `IDENTITY_ENDPOINT` +
 * `IDENTITY_HEADER`, see deno-notes.md §3) that the real @azure/identity talks to. It issues HS256
 * JWTs whose audience is the requested resource, so relay-server (`entraJwtKey`) and the fake ARM can
 * verify them.
 */
import { hmacSha256 } from "../../lib/crypto/hmac.ts";

export interface FakeTokenEndpointOptions {
  /** HS256 secret shared with the verifier. */
  jwtKey: string;
  /** Token lifetime reported to the client and written into `exp`; default 3600 s. */
  lifetimeSec?: number;
  /**
   * The `roles` claim: what relay-server grants (its stand-in for the Azure Relay Listener/Sender/
   * Owner role assignments); default Listen and Send. `null` leaves the claim out.
   */
  roles?: readonly string[] | null;
}

export interface TokenRequest {
  readonly resource: string;
  readonly clientId: string | null;
}

/** How the next answers behave; switch at run time with `setMode`. */
export type TokenMode =
  | { kind: "ok" }
  /** `exp` in the JWT lies this many seconds in the past while `expires_on` still says valid. */
  | { kind: "expired_jwt"; agoSec: number }
  | { kind: "error"; status: number };

export interface FakeTokenEndpoint {
  /** The value for IDENTITY_ENDPOINT. */
  readonly url: string;
  /** The value for IDENTITY_HEADER. */
  readonly header: string;
  /** Environment for a subprocess that should authenticate here (and nowhere else). */
  readonly env: Record<string, string>;
  /** Every token request seen, in order. */
  readonly requests: TokenRequest[];
  setMode(mode: TokenMode): void;
  close(): Promise<void>;
}

const encoder = new TextEncoder();

function base64Url(bytes: Uint8Array | string): string {
  const data = typeof bytes === "string" ? encoder.encode(bytes) : bytes;
  let bin = "";
  for (const b of data) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** A compact HS256 JWT over `claims`. */
export async function signHs256Jwt(claims: Record<string, unknown>, key: string): Promise<string> {
  const head = base64Url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = base64Url(JSON.stringify(claims));
  return `${head}.${body}.${base64Url(await hmacSha256(key, `${head}.${body}`))}`;
}

export function startFakeTokenEndpoint(opts: FakeTokenEndpointOptions): FakeTokenEndpoint {
  const header = crypto.randomUUID();
  const lifetimeSec = opts.lifetimeSec ?? 3600;
  const roles = opts.roles === undefined ? ["Listen", "Send"] : opts.roles;
  const requests: TokenRequest[] = [];
  let mode: TokenMode = { kind: "ok" };

  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (req.method !== "GET" || url.pathname !== "/msi/token") {
      return new Response("not found", { status: 404 });
    }
    if (req.headers.get("x-identity-header") !== header) {
      return Response.json({ error: "invalid_request", error_description: "bad identity header" }, {
        status: 401,
      });
    }
    const resource = url.searchParams.get("resource") ?? "";
    requests.push({ resource, clientId: url.searchParams.get("client_id") });
    if (mode.kind === "error") {
      return Response.json(
        { error: "invalid_request", error_description: "fake token endpoint failure" },
        { status: mode.status },
      );
    }
    const now = Math.floor(Date.now() / 1000);
    const expiresOn = now + lifetimeSec;
    const exp = mode.kind === "expired_jwt" ? now - mode.agoSec : expiresOn;
    const token = await signHs256Jwt({
      aud: resource,
      iss: "https://sts.windows.net/00000000-0000-0000-0000-000000000000/",
      sub: "fake-managed-identity",
      oid: "11111111-1111-1111-1111-111111111111",
      iat: now,
      nbf: now - 5,
      exp,
      ...(roles === null ? {} : { roles }),
    }, opts.jwtKey);
    return Response.json({
      access_token: token,
      expires_on: String(expiresOn),
      resource,
      token_type: "Bearer",
      client_id: "22222222-2222-2222-2222-222222222222",
    });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  const url = `http://127.0.0.1:${server.addr.port}/msi/token`;
  return {
    url,
    header,
    env: { IDENTITY_ENDPOINT: url, IDENTITY_HEADER: header },
    requests,
    setMode(m) {
      mode = m;
    },
    async close() {
      await server.shutdown();
    },
  };
}
