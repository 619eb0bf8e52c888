import assert from "node:assert/strict";
import { lingerClose } from "../../lib/net/linger_close.ts";
import { readAll, tcpPair, writeAll } from "../helpers/servers.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("lingerClose: the reply survives input the server never read", async () => {
  const [client, server] = await tcpPair();
  // Unread input at close time is what makes the kernel reset the connection.
  await writeAll(client, enc.encode("a request body the server will not read"));
  await writeAll(server, enc.encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
  const closing = lingerClose(server);
  await writeAll(client, enc.encode("more"));
  assert.equal(dec.decode(await readAll(client)), "HTTP/1.1 400 Bad Request\r\n\r\n");
  client.close();
  await closing;
  assert.throws(() => server.close(), Deno.errors.BadResource);
});

Deno.test("lingerClose: a client that keeps the connection open is closed at the deadline", async () => {
  const [client, server] = await tcpPair();
  await lingerClose(server, 20);
  assert.equal(await client.read(new Uint8Array(1)), null);
  assert.throws(() => server.close(), Deno.errors.BadResource);
  client.close();
});
