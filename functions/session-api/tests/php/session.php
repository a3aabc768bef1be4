<?php
/**
 * Plays one scripted PHP request (or several, one after the other) against a
 * DynamoDB-compatible endpoint through DynamoDbSessionHandler, the stand-in
 * for the AWS SDK for PHP's session handler, and reports what PHP saw.
 *
 *   php session.php '<script JSON>'
 *
 * Script:
 *   endpoint, table          where the sessions live
 *   handler                  SDK options (locking, max_lock_wait_time,
 *                            data_attribute_type, session_lifetime, ...)
 *   serialize_handler        session.serialize_handler: php | php_serialize
 *   ini                      any other session.* settings, e.g.
 *                            {"session.use_strict_mode": "1",
 *                             "session.sid_bits_per_character": "6"}
 *   gadgets                  (optional) a directory: load gadgets.php, whose
 *                            classes leave a file there when PHP runs their
 *                            magic methods (PHP object injection tests)
 *   actions                  a list; each is an object with one key:
 *     {"id": "<sid>"}              session_id(sid)
 *     {"create_id": true}          session_id(session_create_id()): an id PHP mints
 *     {"cookie": "<sid>"}          the id arrives in the session cookie, as in a web
 *                                  request
 *     {"start": {...options}}      session_start(options)
 *     {"set": {"k": value}}        $_SESSION[k] = value (JSON objects as arrays); or
 *     {"set": [["k", value], ...]} the same, in this order
 *     {"set_serialized": {"k": s}} $_SESSION[k] = unserialize(s), for what JSON cannot say
 *     {"unset": ["k"]}             unset($_SESSION[k])
 *     {"write_close": true}        session_write_close()
 *     {"abort": true}              session_abort()
 *     {"destroy": true}            session_destroy()
 *     {"regenerate": bool}         session_regenerate_id(delete_old)
 *     {"gc": true}                 session_gc() (a no-op in the SDK)
 *     {"garbage_collect": true}    the SDK's SessionHandler::garbageCollect()
 *     {"wait": true}               print {"waiting"}, then block until a line on stdin
 *     {"crash": true}              SIGKILL itself: a request that dies holding its lock
 *
 * Output, flushed line by line so a caller can follow a running request:
 *   {"call": {op, request, response|null, error|null}}   each DynamoDB call
 *       as it is made (a caller sees a lock wait while session_start() retries)
 *   {step, action, result, elapsed_ms, warnings, calls, error}   each action;
 *       after start/set/unset/regenerate also id, active, session, export,
 *       serialized_b64, encoded_b64 (session_encode()) and time
 *   {"waiting": true}   a wait action blocks on stdin
 *   {"done": true}      the end
 * A session still active after the last action is written and closed, as PHP
 * does at the end of a request, and reported as the action "end".
 */

require __DIR__ . '/DynamoDbSessionHandler.php';

$script = json_decode($argv[1] ?? '', true);
if (!is_array($script)) {
    fwrite(STDERR, "usage: php session.php '<script JSON>'\n");
    exit(2);
}

$warnings = [];
set_error_handler(function ($level, $message) use (&$warnings) {
    $warnings[] = $message;
    return true;
});

if (isset($script['gadgets'])) {
    $GLOBALS['gadget_dir'] = $script['gadgets'];
    require __DIR__ . '/gadgets.php';
}

$calls = [];
$trace = function ($op, $request, $response, $error) use (&$calls) {
    $call = ['op' => $op, 'request' => $request, 'response' => $response, 'error' => $error];
    $calls[] = $call;
    emit(['call' => $call]);
};

// CLI has no headers to send: no cookies, no cache headers, no random GC.
ini_set('session.use_cookies', '0');
ini_set('session.use_only_cookies', '0');
ini_set('session.use_trans_sid', '0');
ini_set('session.cache_limiter', '');
ini_set('session.gc_probability', '0');
ini_set('session.serialize_handler', $script['serialize_handler'] ?? 'php');
foreach ($script['ini'] ?? [] as $name => $value) {
    if (ini_set($name, (string) $value) === false) {
        fwrite(STDERR, "cannot set $name\n");
        exit(2);
    }
}

$handler = new DynamoDbSessionHandler(['endpoint' => $script['endpoint'], 'table_name' => $script['table'], 'trace' => $trace]
    + ($script['handler'] ?? []));
session_set_save_handler($handler, true); // as the SDK's register()

/** Straight to the stream, not through PHP's output layer: output would count as sent headers. */
function emit(array $event): void
{
    fwrite(STDOUT, json_encode($event, JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION | JSON_INVALID_UTF8_SUBSTITUTE
        | JSON_PARTIAL_OUTPUT_ON_ERROR) . "\n");
    fflush(STDOUT);
}

/** What $_SESSION holds, in every form a test may compare. */
function snapshot(): array
{
    $active = session_status() === PHP_SESSION_ACTIVE;
    $session = $_SESSION ?? [];
    return [
        'id' => session_id(),
        'active' => $active,
        'session' => $session,
        'export' => var_export($session, true),
        'serialized_b64' => base64_encode(serialize($session)),
        'encoded_b64' => $active ? base64_encode((string) session_encode()) : null,
        'time' => time(),
    ];
}

$actions = $script['actions'] ?? [];
$run = function (string $action, $argument) use ($handler) {
    switch ($action) {
        case 'id':
            return session_id($argument);
        case 'create_id':
            return session_id(session_create_id());
        case 'cookie':
            ini_set('session.use_cookies', '1');
            ini_set('session.use_only_cookies', '1');
            $_COOKIE[session_name()] = $argument;
            return true;
        case 'start':
            return session_start(is_array($argument) ? $argument : []);
        case 'set':
            // [[key, value], ...] keeps the order a JSON object may not
            $pairs = array_is_list($argument) ? $argument : array_map(null, array_keys($argument), $argument);
            foreach ($pairs as [$key, $value]) {
                $_SESSION[$key] = $value;
            }
            return true;
        case 'set_serialized':
            foreach ($argument as $key => $serialized) {
                $_SESSION[$key] = unserialize($serialized);
            }
            return true;
        case 'unset':
            foreach ($argument as $key) {
                unset($_SESSION[$key]);
            }
            return true;
        case 'write_close':
            return session_write_close();
        case 'abort':
            return session_abort();
        case 'destroy':
            return session_destroy();
        case 'regenerate':
            return session_regenerate_id((bool) $argument);
        case 'gc':
            return session_gc();
        case 'garbage_collect':
            $handler->garbageCollect();
            return true;
        case 'wait':
            emit(['waiting' => true]);
            return fgets(STDIN) !== false;
        case 'crash':
            posix_kill(posix_getpid(), SIGKILL);
            return false;
        default:
            throw new InvalidArgumentException("unknown action $action");
    }
};

$steps = $actions;
$steps[] = ['end' => true];
foreach ($steps as $step => $entry) {
    $action = (string) array_key_first($entry);
    $argument = $entry[$action];
    if ($action === 'end' && session_status() !== PHP_SESSION_ACTIVE) {
        break;
    }
    $warnings = [];
    $calls = [];
    $started = hrtime(true);
    try {
        $result = $action === 'end' ? session_write_close() : $run($action, $argument);
        $error = null;
    } catch (Throwable $e) {
        $result = null;
        $error = get_class($e) . ': ' . $e->getMessage();
    }
    $event = [
        'step' => $step,
        'action' => $action,
        'result' => $result,
        'elapsed_ms' => (hrtime(true) - $started) / 1e6,
        'warnings' => $warnings,
        'calls' => $calls,
        'error' => $error,
    ];
    if (in_array($action, ['start', 'regenerate', 'set', 'set_serialized', 'unset'], true)) {
        $event += snapshot();
    }
    emit($event);
    if ($error !== null) {
        exit(1);
    }
}
emit(['done' => true]);
