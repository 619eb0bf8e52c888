/**
 * The doctor's relay checks: the token is accepted for Send (one sender dial; a 404 "no listener"
 * still proves the key, since the relay checks it first), for Listen (a control channel opened and
 * closed at once), a listener is online (it answers a probe envelope with an empty target, which it
 * refuses without dialling anything) and, optionally, a target is allowed and reachable.
 */
import type { Logger } from "../observe/log.ts";
import { describeDialFailure, isAuthStatus } from "../relay/dial_error.ts";
import {
  EnvelopeRejected,
  exchangeEnvelope,
  requestTunnel,
  type SenderRelayConfig,
} from "../sender/open_tunnel.ts";
import type { TokenProvider } from "../relay/token.ts";
import { connectUrl, listenUrl, resourceUri, withToken } from "../relay/urls.ts";
import { errorMessage } from "../errors.ts";
import { connectWebSocket } from "../ws/client.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { WsHandshakeError } from "../ws/errors.ts";
import { type Check, fail, type Outcome, pass, skip } from "./checks.ts";
import { CREDENTIAL_CHECK } from "./credential.ts";
import { TLS_CHECK } from "./network.ts";

export const SEND_CHECK = "token accepted for Send";
export const LISTEN_CHECK = "token accepted for Listen";
export const LISTENER_CHECK = "listener online";
export const TARGET_CHECK = "target allowed and reachable";

export interface RelayCheckOptions {
  relay: SenderRelayConfig;
  /** Each check's deadline, also the listener's time to answer an envelope. */
  timeoutMs: number;
  /** Leave out the Listen check (it briefly adds a listener to a live hybrid connection). */
  skipListen?: boolean;
  /** `host:port` for the listener to dial. */
  target?: string;
  logger: Logger;
}

/** The relay checks and `close()`, which drops the probe socket whatever happened. */
export function relayChecks(opts: RelayCheckOptions): { checks: Check[]; close(): void } {
  const probe = new Probe(opts);
  const checks: Check[] = [
    { label: SEND_CHECK, needs: [TLS_CHECK, CREDENTIAL_CHECK], run: (s) => probe.send(s) },
    { label: LISTEN_CHECK, needs: [TLS_CHECK, CREDENTIAL_CHECK], run: (s) => probe.listen(s) },
    { label: LISTENER_CHECK, needs: [SEND_CHECK], run: (s) => probe.listener(s) },
  ];
  if (opts.target !== undefined) {
    const target = opts.target;
    checks.push({
      label: TARGET_CHECK,
      needs: [LISTENER_CHECK],
      run: (s) => probe.target(target, s),
    });
  }
  return { checks, close: () => probe.close() };
}

/** What the Send dial found, kept for the listener check. */
type SendResult = { socket: WebSocketConn } | { noListener: string };

class Probe {
  readonly #opts: RelayCheckOptions;
  readonly #log: Logger;
  #sent: SendResult | undefined;

  constructor(opts: RelayCheckOptions) {
    this.#opts = opts;
    this.#log = quiet(opts.logger);
  }

  async send(signal: AbortSignal): Promise<Outcome> {
    const { relay } = this.#opts;
    try {
      this.#sent = { socket: await this.#dial(connectUrl(relay.endpoint, relay.entity), signal) };
      return pass("the relay took the sender dial (HTTP 101)");
    } catch (err) {
      if (err instanceof WsHandshakeError && err.status === 404) {
        this.#sent = { noListener: describeDialFailure(err) };
        return pass(`the relay checked the token, then answered ${describeDialFailure(err)}`);
      }
      return dialFailure(err, relay.tokens.kind, "Send");
    }
  }

  async listen(signal: AbortSignal): Promise<Outcome> {
    if (this.#opts.skipListen) return skip("--skip-listen");
    const { relay } = this.#opts;
    let conn: WebSocketConn;
    try {
      conn = await this.#dial(listenUrl(relay.endpoint, relay.entity), signal);
    } catch (err) {
      if (err instanceof WsHandshakeError && /MaximumListenersPerEndpoint/i.test(err.statusText)) {
        return fail(
          `the hybrid connection has its most listeners (${describeDialFailure(err)})`,
          "stop a listener, or pass --skip-listen",
        );
      }
      return dialFailure(err, relay.tokens.kind, "Listen");
    }
    // Registered for a moment only: a sender routed to it now would wait for nothing.
    await conn.close(1000).catch(() => conn.closeNow());
    return pass("control channel opened and closed");
  }

  async listener(signal: AbortSignal): Promise<Outcome> {
    const sent = this.#sent;
    if (sent === undefined) return fail("no sender dial to probe with");
    if ("noListener" in sent) {
      return fail(
        `no listener is connected to "${this.#opts.relay.entity}" (${sent.noListener})`,
        `run aztunnel relay-listener with --hyco ${this.#opts.relay.entity} and the same --relay, ` +
          "and look for control_started in its log",
      );
    }
    this.#sent = undefined;
    const answer = await this.#exchange(sent.socket, "", signal);
    if (answer instanceof EnvelopeRejected || answer === "accepted") {
      const id = answer instanceof EnvelopeRejected ? answer.listenerId : undefined;
      return pass(`a listener${id ? ` (listener_id ${id})` : ""} answered the probe`);
    }
    return fail(
      `a listener took the rendezvous but did not answer: ${answer}`,
      "check the listener's log; an Arc agent or another relay client is not an aztunnel listener",
    );
  }

  async target(target: string, signal: AbortSignal): Promise<Outcome> {
    const { relay } = this.#opts;
    let socket: WebSocketConn;
    try {
      socket = await this.#dial(connectUrl(relay.endpoint, relay.entity), signal);
    } catch (err) {
      return fail(`sender dial failed: ${describeDialFailure(err)}`);
    }
    const answer = await this.#exchange(socket, target, signal);
    if (answer === "accepted") return pass(`the listener connected to ${target}`);
    if (!(answer instanceof EnvelopeRejected)) {
      return fail(`no answer from the listener: ${answer}`);
    }
    if (answer.code === "not_allowed") {
      return fail(
        `the listener refused ${target}: ${answer.reason} (not_allowed)`,
        `add ${target} (or a pattern that covers it) to the listener's --allow list`,
      );
    }
    return fail(
      `the listener could not connect to ${target}: ${answer.reason} (${answer.code || "no code"})`,
      `check that ${target} accepts connections from the listener's machine (name, port, firewall)`,
    );
  }

  close(): void {
    const sent = this.#sent;
    this.#sent = undefined;
    if (sent && "socket" in sent) sent.socket.closeNow();
  }

  /** One upgrade attempt with a fresh token, no retries: doctor reports, it does not wait. */
  async #dial(url: string, signal: AbortSignal): Promise<WebSocketConn> {
    const { relay } = this.#opts;
    const resUri = resourceUri(relay.endpoint, relay.entity);
    const { token } = await relay.tokens.getToken(resUri, signal);
    return await connectWebSocket(withToken(url, token), {
      caCerts: relay.caCerts,
      signal,
      timeoutMs: this.#opts.timeoutMs,
    });
  }

  /** "accepted" (then closed), the listener's refusal, or why no answer came. */
  async #exchange(
    socket: WebSocketConn,
    target: string,
    signal: AbortSignal,
  ): Promise<"accepted" | EnvelopeRejected | string> {
    const opts = {
      relay: { ...this.#opts.relay, replyTimeoutMs: this.#opts.timeoutMs },
      logger: this.#log,
      signal,
      features: [],
    };
    const onAbort = () => socket.closeNow();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      const opened = await exchangeEnvelope(socket, requestTunnel(target, opts), opts, {
        reply: () => socket.receive(),
      });
      await opened.socket.close(1000).catch(() => opened.socket.closeNow());
      return "accepted";
    } catch (err) {
      return err instanceof EnvelopeRejected ? err : errorMessage(err);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/** A refused or failed dial, with the fix for the right the token needed. */
function dialFailure(err: unknown, kind: TokenProvider["kind"], right: "Send" | "Listen"): Outcome {
  const what = describeDialFailure(err);
  if (err instanceof WsHandshakeError && isAuthStatus(err.status)) {
    return fail(`the relay refused the token (${what})`, authFix(err.status, kind, right));
  }
  if (err instanceof WsHandshakeError) return fail(`the relay answered ${what}`);
  return fail(`dial failed: ${what}`);
}

/** What to change when the relay refused a token for `right`. */
export function authFix(status: number, kind: TokenProvider["kind"], right: "Send" | "Listen") {
  if (kind === "entra") {
    const role = right === "Send" ? "Azure Relay Sender" : "Azure Relay Listener";
    return `give the identity the "${role}" role on the namespace or the hybrid connection`;
  }
  if (status === 401) {
    return "AZTUNNEL_KEY_NAME/AZTUNNEL_KEY do not match a policy of the namespace or the hybrid " +
      "connection: copy the key name and the key again";
  }
  const listenOnly = right === "Listen" ? ", or pass --skip-listen where only senders run" : "";
  return `the key lacks ${right}: use a policy that grants ${right}${listenOnly}`;
}

/** The probes' own log lines (connection requested, refused…) only at debug level. */
function quiet(log: Logger): Logger {
  return {
    debug: (msg, attrs) => log.debug(msg, attrs),
    info: (msg, attrs) => log.debug(msg, attrs),
    warn: (msg, attrs) => log.debug(msg, attrs),
    error: (msg, attrs) => log.debug(msg, attrs),
    with: (attrs) => quiet(log.with(attrs)),
  };
}
