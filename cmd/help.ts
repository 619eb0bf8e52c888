/**
 * The help texts that teach: the overview under `aztunnel --help` (modes, authentication,
 * environment, examples, like the Go tool's hand-written one) and the authentication note every
 * relay-listener / relay-sender page ends with.
 */

/** How relay-listener and relay-sender authenticate; shown on each of their help pages. */
export const RELAY_AUTH_HELP = `
Authentication (credentials are never flags):
  SAS    AZTUNNEL_KEY_NAME and AZTUNNEL_KEY, both set: a shared access policy of the namespace or
         of the hybrid connection (Listen rights for relay-listener, Send for relay-sender)
  Entra  otherwise @azure/identity's DefaultAzureCredential, first that works of: environment
         (AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH),
         workload identity, managed identity, Azure CLI (az login), Azure PowerShell, Azure
         Developer CLI; the identity needs the role "Azure Relay Listener" or "Azure Relay Sender"
  Set both of AZTUNNEL_KEY_NAME and AZTUNNEL_KEY, or neither.
  TLS: the relay's certificate is always verified; trust a private CA with --relay-ca-cert.`;

/** The root page's text after the option and command lists. */
export const OVERVIEW_HELP = `
Modes:
  relay-listener              next to the targets: keeps a control channel open on the relay and
                              dials each tunnel's host:port (limit them with --allow)
  relay-sender port-forward   a local port forwarding to one host:port behind the listener
  relay-sender socks5-proxy   a local SOCKS5 proxy: each client names its own target
  relay-sender connect        stdin/stdout to one host:port (ssh ProxyCommand)
  arc connect, port-forward   an Azure Arc machine through its Arc-managed relay (no listener)
  relay-server                a local relay speaking the Hybrid Connections protocol (tests,
                              CI, machines without Azure): ws://, or wss:// with --tls-cert
                              or --tls-self-signed
  demo                        all of it on 127.0.0.1 with a self-check
${RELAY_AUTH_HELP}
  arc uses DefaultAzureCredential only (see aztunnel help arc).

Environment:
  AZTUNNEL_RELAY_NAME     --relay: namespace name, FQDN or URI (ws://host:port for relay-server)
  AZTUNNEL_HYCO_NAME      --hyco: hybrid connection name
  AZTUNNEL_RELAY_SUFFIX   --relay-suffix (default .servicebus.windows.net)
  AZTUNNEL_RELAY_CA_CERT  --relay-ca-cert: PEM CA for a private relay certificate
  AZTUNNEL_KEY_NAME, AZTUNNEL_KEY   SAS policy name and key
  AZTUNNEL_METRICS_ADDR   --metrics-addr
  Each command's help lists the rest as "(env: ...)".

Examples:
  # On the machine next to the target:
  export AZTUNNEL_RELAY_NAME=my-relay AZTUNNEL_HYCO_NAME=my-hyco
  export AZTUNNEL_KEY_NAME=RootManageSharedAccessKey AZTUNNEL_KEY=...
  aztunnel relay-listener --allow 127.0.0.1:22

  # On your machine (same exports): ssh through the tunnel
  ssh -o ProxyCommand="aztunnel --log-level warn relay-sender connect %h:%p" user@127.0.0.1
  aztunnel relay-sender port-forward -b 127.0.0.1:2222 127.0.0.1:22
  aztunnel relay-sender socks5-proxy -b 127.0.0.1:1080

  # Everything locally, no Azure:
  aztunnel demo

Run "aztunnel help <command>" for a command's flags, and
"aztunnel completion bash|zsh|fish" for a shell completion script.`;
