"""amplimon on Kafka: embedded broker, topics, producer, worker, sink and archive.

Every client takes its connection and topic names from :class:`streams.settings.Settings`;
see ``docs/live.md`` for the pipeline, delivery guarantees and partitioning.
"""

from streams.kafka._config import Topics, aiokafka_options, kafka_python_options
from streams.kafka.broker import BrokerError, EmbeddedBroker, wait_ready
from streams.kafka.driver import Checkpoint, EngineDriver, Message
from streams.kafka.output import KafkaOutput, decode_row, encode_row
from streams.kafka.producer import ProduceResult, guess_topic, produce
from streams.kafka.stack import LiveStack
from streams.kafka.topics import TopicError, create_topics, topic_plan

__all__ = [
    "BrokerError",
    "Checkpoint",
    "EmbeddedBroker",
    "EngineDriver",
    "KafkaOutput",
    "LiveStack",
    "Message",
    "ProduceResult",
    "TopicError",
    "Topics",
    "aiokafka_options",
    "create_topics",
    "decode_row",
    "encode_row",
    "guess_topic",
    "kafka_python_options",
    "produce",
    "topic_plan",
    "wait_ready",
]
