<?php
// php roundtrip.php <input> <output>
//
// Input: one session per line, "<format> <base64 of the stored bytes> <values>",
// format `php` or `php_serialize`, values 1 when the JSON form is wanted (0 for
// sessions with references, whose JSON form PHP cannot see).
// Output: one line per session: "ok <base64 of session_encode()> <JSON form or ->"
// after session_decode(), or "error <message>".

declare(strict_types=1);

// Before common.php is compiled: its Raw class is deprecated (on purpose), and
// any output before the session starts would stop session ini changes.
error_reporting(E_ALL & ~E_DEPRECATED);
ini_set('display_errors', 'stderr');

require __DIR__ . '/common.php';

[, $input, $output] = $argv;
$out = fopen($output, 'w');
$current = null;
foreach (file($input, FILE_IGNORE_NEW_LINES) as $line) {
    [$format, $stored, $values] = explode(' ', $line);
    // A failed session_decode() destroys the session: start again then too.
    if ($format !== $current || session_status() !== PHP_SESSION_ACTIVE) {
        start_session($format);
        $current = $format;
    }
    $_SESSION = [];
    try {
        if (!session_decode(base64_decode($stored, true))) {
            throw new RuntimeException('session_decode() failed');
        }
        $json = $values === '1' ? session_json($_SESSION) : '-';
        fwrite($out, 'ok ' . base64_encode(encoded_session()) . ' ' . $json . "\n");
    } catch (Throwable $error) {
        fwrite($out, 'error ' . str_replace("\n", ' ', $error->getMessage()) . "\n");
    }
}
fclose($out);
