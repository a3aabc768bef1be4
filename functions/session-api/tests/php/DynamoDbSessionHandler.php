<?php
/**
 * A stand-in for the AWS SDK for PHP v3 DynamoDB session handler
 * (Aws\DynamoDb\SessionHandler with StandardSessionConnection or
 * LockingSessionConnection), for interop tests where Composer cannot install
 * the real SDK. It sends the same DynamoDB requests, with the same legacy
 * parameters, and applies the same rules after them:
 *
 * - read: GetItem (ConsistentRead per option); with locking, UpdateItem with
 *   Expected {lock: {Exists: false}}, AttributeUpdates {lock: N 1},
 *   ReturnValues ALL_NEW, retried on ConditionalCheckFailedException after a
 *   random usleep(min..max) while time() < start + max_lock_wait_time (whole
 *   seconds); any other failure, or running out of time, reads nothing.
 *   An item without both `expires` and `data` reads as ''. An item whose
 *   expires <= time() reads as '' and is destroyed (DeleteItem).
 * - write: UpdateItem, no condition: expires = time() + session_lifetime and
 *   lock DELETE always; data (S, or B when data_attribute_type is 'binary';
 *   DELETE when '') only when the data differs from what was read (or the id
 *   changed). close() sends that write with '' unchanged when nothing was
 *   written, so the lock is released and the expiry pushed on.
 * - destroy: DeleteItem. gc(): nothing (the SDK leaves it to garbageCollect()).
 * - garbageCollect(): Scan (AttributesToGet [hash_key], ScanFilter
 *   expires LT now AND lock NULL) page by page, BatchWriteItem deletes of
 *   batch_config.batch_size (default 25, 2..25), `before` called before each.
 * - key: trim(session_name . '_' . id, '_'), session_name from open().
 *
 * Transport: PHP's own streams, the DynamoDB JSON protocol 1.0, a dummy
 * signature (the emulators do not check it). It does not implement
 * SessionUpdateTimestampHandlerInterface, as the SDK's handler does not.
 *
 * Optional `trace` config: a callable(string $operation, array $request,
 * ?array $response, ?string $errorCode) called after every request, so tests
 * can see exactly what was sent and when a lock attempt failed.
 */

class DynamoDbException extends RuntimeException
{
    /** @var string The AWS error code, e.g. ConditionalCheckFailedException */
    public $awsErrorCode;

    public function __construct(string $awsErrorCode, string $message, int $status)
    {
        parent::__construct("$awsErrorCode ($status): $message", $status);
        $this->awsErrorCode = $awsErrorCode;
    }
}

/** The few DynamoDB calls the handler makes, over HTTP with PHP streams. */
class DynamoDbJsonClient
{
    private $endpoint;
    private $trace;

    public function __construct(string $endpoint, ?callable $trace = null)
    {
        $this->endpoint = rtrim($endpoint, '/') . '/';
        $this->trace = $trace;
    }

    /** Sends one operation; returns the decoded response or throws DynamoDbException. */
    public function call(string $operation, array $request): array
    {
        $body = json_encode($request, JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
        $date = gmdate('Ymd\THis\Z');
        $headers = [
            'Content-Type: application/x-amz-json-1.0',
            "X-Amz-Target: DynamoDB_20120810.$operation",
            "X-Amz-Date: $date",
            'Authorization: AWS4-HMAC-SHA256 Credential=local/' . substr($date, 0, 8)
                . '/us-east-1/dynamodb/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, '
                . 'Signature=' . str_repeat('0', 64),
            'Content-Length: ' . strlen($body),
            'Connection: close',
        ];
        $context = stream_context_create(['http' => [
            'method' => 'POST',
            'header' => implode("\r\n", $headers),
            'content' => $body,
            'ignore_errors' => true, // read 4xx/5xx bodies: they carry the error code
            'timeout' => 30,
            'protocol_version' => 1.1,
        ]]);
        $raw = @file_get_contents($this->endpoint, false, $context);
        if ($raw === false) {
            $this->traced($operation, $request, null, 'TransportError');
            throw new DynamoDbException('TransportError', "cannot reach {$this->endpoint}", 0);
        }
        $status = 0;
        foreach ($http_response_header ?? [] as $line) {
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
                $status = (int) $m[1]; // the last status line wins (after 100 Continue)
            }
        }
        $response = $raw === '' ? [] : json_decode($raw, true);
        if (!is_array($response)) {
            $response = [];
        }
        if ($status >= 300 || $status === 0) {
            // "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"
            $type = (string) ($response['__type'] ?? 'UnknownError');
            $code = substr($type, (int) strrpos($type, '#') + (strpos($type, '#') === false ? 0 : 1));
            $message = (string) ($response['message'] ?? $response['Message'] ?? $raw);
            $this->traced($operation, $request, null, $code);
            throw new DynamoDbException($code, $message, $status);
        }
        $this->traced($operation, $request, $response, null);
        return $response;
    }

    private function traced(string $operation, array $request, ?array $response, ?string $error): void
    {
        if ($this->trace) {
            ($this->trace)($operation, $request, $response, $error);
        }
    }
}

class DynamoDbSessionHandler implements SessionHandlerInterface
{
    /** @var DynamoDbJsonClient */
    private $client;
    /** @var array The SDK's options, with its defaults */
    private $config;
    private $sessionName = '';
    private $openSessionId = '';
    private $dataRead = '';
    private $sessionWritten = false;

    /**
     * @param array $config the SDK v3 keys (table_name, hash_key, data_attribute,
     *   data_attribute_type, session_lifetime, session_lifetime_attribute,
     *   consistent_read, locking, max_lock_wait_time, min_lock_retry_microtime,
     *   max_lock_retry_microtime, batch_config) plus `endpoint` and `trace`.
     *   Like the SDK, it ignores other keys, the v2 names included
     *   (locking_strategy, gc_batch_size, gc_operation_delay, automatic_gc).
     */
    public function __construct(array $config)
    {
        $batch = ($config['batch_config'] ?? []) + ['batch_size' => 25, 'before' => null];
        $this->config = [
            'table_name' => 'sessions',
            'hash_key' => 'id',
            'data_attribute' => 'data',
            'data_attribute_type' => 'string',
            // The SDK falls back to PHP's own gc_maxlifetime.
            'session_lifetime' => (int) ini_get('session.gc_maxlifetime'),
            'session_lifetime_attribute' => 'expires',
            'consistent_read' => true,
            'locking' => false,
            'max_lock_wait_time' => 10,
            'min_lock_retry_microtime' => 10000,
            'max_lock_retry_microtime' => 50000,
        ];
        foreach ($this->config as $key => $default) {
            if (array_key_exists($key, $config)) {
                $this->config[$key] = $config[$key];
            }
        }
        $this->config['batch_config'] = $batch;
        $this->client = new DynamoDbJsonClient($config['endpoint'], $config['trace'] ?? null);
    }

    #[\ReturnTypeWillChange]
    public function open($savePath, $sessionName)
    {
        $this->sessionName = $sessionName;
        return true;
    }

    #[\ReturnTypeWillChange]
    public function close()
    {
        $id = session_id();
        // Release the lock and push the expiry on even when nothing was written.
        if ($this->openSessionId !== $id || !$this->sessionWritten) {
            $this->sessionWritten = $this->writeItem($this->formatId($id), '', false);
        }
        return $this->sessionWritten;
    }

    #[\ReturnTypeWillChange]
    public function read($id)
    {
        $this->openSessionId = $id;
        $this->dataRead = '';
        $item = $this->config['locking'] ? $this->readLocked($this->formatId($id)) : $this->readItem($this->formatId($id));
        $data = $this->config['data_attribute'];
        $expires = $this->config['session_lifetime_attribute'];
        if (isset($item[$expires]) && isset($item[$data])) {
            $this->dataRead = $item[$data];
            if ($item[$expires] <= time()) {
                $this->dataRead = '';
                $this->destroy($id);
            }
        }
        return $this->dataRead;
    }

    #[\ReturnTypeWillChange]
    public function write($id, $data)
    {
        $changed = $id !== $this->openSessionId || $data !== $this->dataRead;
        $this->openSessionId = $id;
        $this->sessionWritten = $this->writeItem($this->formatId($id), $data, $changed);
        return $this->sessionWritten;
    }

    #[\ReturnTypeWillChange]
    public function destroy($id)
    {
        $this->openSessionId = $id;
        try {
            $this->client->call('DeleteItem', [
                'TableName' => $this->config['table_name'],
                'Key' => $this->key($this->formatId($id)),
            ]);
            $this->sessionWritten = true;
        } catch (DynamoDbException $e) {
            $this->sessionWritten = $this->warn("Error deleting session {$this->formatId($id)}: {$e->getMessage()}");
        }
        return $this->sessionWritten;
    }

    /** The SDK's gc() does nothing: garbage collection is garbageCollect(), run on a schedule. */
    #[\ReturnTypeWillChange]
    public function gc($maxLifetime)
    {
        return true;
    }

    /** Deletes expired, unlocked sessions, as the SDK's deleteExpired(). */
    public function garbageCollect(): void
    {
        // The SDK checks this when its WriteRequestBatch is made, i.e. here.
        $size = $this->config['batch_config']['batch_size'];
        if ($size > 25 || $size < 2) {
            throw new InvalidArgumentException('"batch_size" must be between 2 and 25.');
        }
        $hashKey = $this->config['hash_key'];
        $scan = [
            'TableName' => $this->config['table_name'],
            'AttributesToGet' => [$hashKey],
            'ScanFilter' => [
                $this->config['session_lifetime_attribute'] => [
                    'ComparisonOperator' => 'LT',
                    'AttributeValueList' => [['N' => (string) time()]],
                ],
                'lock' => ['ComparisonOperator' => 'NULL'],
            ],
        ];
        $queue = [];
        do {
            $page = $this->client->call('Scan', $scan);
            foreach ($page['Items'] ?? [] as $item) {
                $queue[] = ['DeleteRequest' => ['Key' => [$hashKey => $item[$hashKey]]]];
                if (count($queue) >= $this->config['batch_config']['batch_size']) {
                    $this->flush($queue);
                }
            }
            if (isset($page['LastEvaluatedKey'])) {
                $scan['ExclusiveStartKey'] = $page['LastEvaluatedKey'];
            }
        } while (isset($page['LastEvaluatedKey']));
        $this->flush($queue);
    }

    /** One BatchWriteItem per batch; unprocessed requests go round again. */
    private function flush(array &$queue): void
    {
        while ($queue) {
            $batch = array_splice($queue, 0, $this->config['batch_config']['batch_size']);
            $request = ['RequestItems' => [$this->config['table_name'] => $batch]];
            if (is_callable($this->config['batch_config']['before'])) {
                ($this->config['batch_config']['before'])($request);
            }
            try {
                $result = $this->client->call('BatchWriteItem', $request);
                foreach ($result['UnprocessedItems'][$this->config['table_name']] ?? [] as $again) {
                    $queue[] = $again;
                }
            } catch (DynamoDbException $e) {
                if ($e->awsErrorCode === 'ProvisionedThroughputExceededException') {
                    array_push($queue, ...$batch);
                }
                // The SDK ignores other batch errors unless an `error` callback is set.
            }
        }
    }

    private function readItem(string $key): array
    {
        try {
            $result = $this->client->call('GetItem', [
                'TableName' => $this->config['table_name'],
                'Key' => $this->key($key),
                'ConsistentRead' => (bool) $this->config['consistent_read'],
            ]);
            return $this->values($result['Item'] ?? []);
        } catch (DynamoDbException $e) {
            return []; // the SDK reads nothing on any error
        }
    }

    private function readLocked(string $key): array
    {
        $params = [
            'TableName' => $this->config['table_name'],
            'Key' => $this->key($key),
            'Expected' => ['lock' => ['Exists' => false]],
            'AttributeUpdates' => ['lock' => ['Value' => ['N' => '1']]],
            'ReturnValues' => 'ALL_NEW',
        ];
        $timeout = time() + $this->config['max_lock_wait_time'];
        while (true) {
            try {
                $result = $this->client->call('UpdateItem', $params);
                return $this->values($result['Attributes'] ?? []);
            } catch (DynamoDbException $e) {
                if ($e->awsErrorCode === 'ConditionalCheckFailedException' && time() < $timeout) {
                    usleep(rand($this->config['min_lock_retry_microtime'], $this->config['max_lock_retry_microtime']));
                } else {
                    return []; // gave up: the session starts empty
                }
            }
        }
    }

    private function writeItem(string $key, string $data, bool $isChanged): bool
    {
        $attributes = [
            $this->config['session_lifetime_attribute'] => [
                'Value' => ['N' => (string) (time() + $this->config['session_lifetime'])],
            ],
            'lock' => ['Action' => 'DELETE'],
        ];
        if ($isChanged) {
            if ($data != '') {
                $attributes[$this->config['data_attribute']] = $this->config['data_attribute_type'] == 'binary'
                    ? ['Value' => ['B' => base64_encode($data)]]
                    : ['Value' => ['S' => $data]];
            } else {
                $attributes[$this->config['data_attribute']] = ['Action' => 'DELETE'];
            }
        }
        try {
            $this->client->call('UpdateItem', [
                'TableName' => $this->config['table_name'],
                'Key' => $this->key($key),
                'AttributeUpdates' => $attributes,
            ]);
            return true;
        } catch (DynamoDbException $e) {
            return $this->warn("Error writing session $key: {$e->getMessage()}");
        }
    }

    /** Each attribute's bare value, as the SDK's current($value) (B decoded, N as a string). */
    private function values(array $item): array
    {
        $values = [];
        foreach ($item as $name => $typed) {
            $type = key($typed);
            $values[$name] = $type === 'B' ? base64_decode(current($typed)) : current($typed);
        }
        return $values;
    }

    private function key(string $key): array
    {
        return [$this->config['hash_key'] => ['S' => $key]];
    }

    private function formatId($id): string
    {
        return trim($this->sessionName . '_' . $id, '_');
    }

    private function warn(string $message): bool
    {
        trigger_error($message, E_USER_WARNING);
        return false;
    }
}
