"""The stand-in's "model": decides what a reply says, given what a real model would see.

The HTTP layer (server.py) owns the protocol; a Brain only decides content and tool calls.

TravelBrain is scripted to behave like a good tool-calling model in the travel team: it reads the
system prompt to know which agent it is, the user's request for places and dates, and the tool
results in the conversation; it calls the tools it is offered with arguments taken from the request,
and writes its answer from what the tools returned, so a test can check that facts flowed through.
Models whose names start with "misbehave-" imitate the failures real models produce.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Reply:
    """What the model answers for one /api/chat or /api/generate request.

    content: the assistant text (streamed word by word by the server).
    tool_calls: Ollama-shaped tool calls: [{"function": {"name": str, "arguments": dict}}].
        `arguments` may also be a str to imitate a model that emits broken JSON.
    abort_after_chunks: when set, the server drops the connection after sending this many
        streamed chunks (imitates Ollama dying mid-reply).
    error: when set, (status, message) the server answers with instead of a reply.

    A brain that really generates (llama_brain.LlamaBrain) also reports what its runner measured;
    when set, the server uses these instead of its own estimates:
    done_reason: "stop" or "length" (it stopped at num_predict or the end of the context).
    eval_count: tokens generated; prompt_eval_count: tokens in the prompt it evaluated.
    load_duration, prompt_eval_duration, eval_duration: nanoseconds it spent loading the model
        (during this request), evaluating the prompt, and generating.
    """

    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    abort_after_chunks: int | None = None
    error: tuple[int, str] | None = None
    done_reason: str | None = None
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    load_duration: int | None = None
    prompt_eval_duration: int | None = None
    eval_duration: int | None = None


class Brain(Protocol):
    """Decides one reply. A brain whose class sets `wants_template = True` is also given the
    model's Ollama TEMPLATE as `reply(..., template=...)` (Ollama takes its tool-call tag from it)."""

    def reply(
        self,
        model: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        options: dict[str, Any],
    ) -> Reply: ...


class EchoBrain:
    """Answers with the last user message."""

    def reply(self, model, messages, tools, options) -> Reply:
        last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        return Reply(content=f"You said: {last}")


def default_brain() -> Brain:
    return TravelBrain()


class PaddedBrain:
    """TravelBrain whose text replies run on for `words` more words: a long stream for throughput runs."""

    def __init__(self, words: int) -> None:
        self.inner = TravelBrain()
        self.padding = " " + " ".join(f"note{i % 97}" for i in range(words))

    def reply(self, model, messages, tools, options) -> Reply:
        reply = self.inner.reply(model, messages, tools, options)
        if reply.content and not reply.tool_calls:
            reply.content += self.padding
        return reply


def padded_brain() -> Brain:
    """--brain ollama_standin.brain:padded_brain; STANDIN_PAD_WORDS sets the length (default 20000)."""
    import os

    return PaddedBrain(int(os.environ.get("STANDIN_PAD_WORDS", "20000")))


# --- reading the request ---------------------------------------------------------------------------

MONTHS = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
_STOP = {"I", "We", "My", "Plan", "Please", "Days", "Day", "Trip", "A", "The", "What", "How", "Make", "Give"}
_PLACE = r"[A-Z][\w'’-]+(?:\s+(?:de|da|do|del|la|le|of|am|upon)?\s*[A-Z][\w'’-]+)*"
_DATE = r"\d{4}-\d{2}-\d{2}"
_CURRENCY = r"(USD|EUR|GBP|JPY|CHF|AUD|CAD|NZD|SEK|NOK|DKK|INR|CNY|BRL|MXN|ZAR|SGD|HKD|THB|KRW)"


@dataclass
class Request:
    cities: list[str]
    origin: str | None
    month: int | None
    start_date: str | None
    end_date: str | None
    days: int
    budget: tuple[float, str] | None
    days_given: bool = False

    def filled_from(self, earlier: Request) -> Request:
        if not self.cities:
            self.cities, self.origin = earlier.cities, self.origin or earlier.origin
            if self.month is None and self.start_date is None:
                self.month, self.start_date, self.end_date = earlier.month, earlier.start_date, earlier.end_date
            if not self.days_given and earlier.days_given:
                self.days = earlier.days
            self.budget = self.budget or earlier.budget
        return self


def read_request(text: str) -> Request:
    origin_match = re.search(rf"\bfrom\s+({_PLACE})", text)
    origin = origin_match.group(1) if origin_match else None
    cities: list[str] = []
    for match in re.finditer(rf"\b(?:in|to|visit|visiting|and|then|around|see)\s+({_PLACE})", text):
        name = match.group(1)
        if name.lower() in MONTHS or name in _STOP or re.fullmatch(_CURRENCY, name) or name == origin:
            continue
        if name not in cities:
            cities.append(name)
    month = next((i + 1 for i, m in enumerate(MONTHS) if re.search(rf"\b{m}\b", text, re.I)), None)
    dates = re.findall(_DATE, text)
    days_match = re.search(r"(\d+)[-\s]*(?:days?|nights?)", text, re.I)
    budget = None
    if m := re.search(r"\$\s?(\d[\d,]*(?:\.\d+)?)", text):
        budget = (float(m.group(1).replace(",", "")), "USD")  # as a model reads "$"
    elif m := re.search(rf"(\d[\d,]*(?:\.\d+)?)\s*{_CURRENCY}", text):
        budget = (float(m.group(1).replace(",", "")), m.group(2))
    elif m := re.search(rf"{_CURRENCY}\s*(\d[\d,]*(?:\.\d+)?)", text):
        budget = (float(m.group(2).replace(",", "")), m.group(1))
    return Request(
        cities=cities,
        origin=origin,
        month=month,
        start_date=dates[0] if dates else None,
        end_date=dates[1] if len(dates) > 1 else (dates[0] if dates else None),
        days=max(1, min(int(days_match.group(1)), 14)) if days_match else (7 if re.search(r"\bweek\b", text) else 3),
        budget=budget,
        days_given=bool(days_match),
    )


def _tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(tool name, parsed result) for every tool message, oldest first."""
    results = []
    for message in messages:
        if message.get("role") != "tool":
            continue
        content = message.get("content") or ""
        try:
            parsed: Any = json.loads(content)
        except ValueError:
            parsed = content
        if isinstance(parsed, dict) and set(parsed) == {"result"}:
            parsed = parsed["result"]
        results.append((message.get("tool_name") or "", parsed))
    return results


def _is_error(result: Any) -> bool:
    return isinstance(result, str) and ("error" in result.lower()[:80] or "unknown city" in result.lower())


def _role(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None) -> str:
    system = " ".join(m.get("content") or "" for m in messages if m.get("role") == "system")
    for role in ("Researcher", "Weather", "Planner"):
        if f"You are the {role}" in system:
            return role
    names = {t["function"]["name"] for t in tools or []}
    if {"get_destination", "get_climate", "convert_currency"} <= names:
        return "Assistant"  # every tool and no team role: a general assistant (the fitness check)
    if "get_climate" in names:
        return "Weather"
    if "get_destination" in names:
        return "Researcher"
    return "Planner"


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": {k: v for k, v in arguments.items() if v is not None}}}


# --- the travel team ---------------------------------------------------------------------------------


class TravelBrain:
    accepts_format = True  # the server passes the request's `format` (structured output)

    def reply(self, model, messages, tools, options, format=None) -> Reply:
        if format is not None:
            return self._structured(model, messages, format)
        reply = self._reply(model, messages, tools, options)
        return _as_small_models_write(model, messages, reply, options)

    def _structured(self, model, messages, format) -> Reply:
        """A reply under `format`: one JSON object. Asked for a tool's arguments (the orchestrator's
        request for a required call names the tool), it gives the call it would have made, keeping
        the keys the schema declares; misbehave-notool gives a city no tool knows."""
        if not isinstance(format, dict):
            return Reply(content="{}")
        last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
        named = re.search(r"must call ([A-Za-z_]\w*)", last)
        asked = [m.get("content") or "" for m in messages if _is_request(m)]
        users = [text for text in asked if "must call" not in text]
        request = read_request(users[-1] if users else "")
        for earlier in reversed(users[:-1]):
            request = request.filled_from(read_request(earlier))
        text = users[-1] if users else ""
        call = self._call_for(named.group(1) if named else "", request, _tool_results(messages), text)
        arguments = dict(call["function"]["arguments"]) if call else {}
        if model.startswith("misbehave-notool"):
            arguments = {key: "Atlantis" if isinstance(value, str) else value for key, value in arguments.items()}
        declared = format.get("properties") or {}
        return Reply(content=json.dumps({k: v for k, v in arguments.items() if k in declared}))

    @staticmethod
    def _call_for(name: str, request: Request, results, text: str) -> dict[str, Any] | None:
        cities = [r["city"] for n, r in results if n == "get_destination" and isinstance(r, dict)] or request.cities
        if name == "get_destination" and request.cities:
            return _call(name, city=request.cities[0])
        if name == "get_climate" and cities:
            if request.month is None and request.start_date:
                return _call(name, city=cities[0], start_date=request.start_date, end_date=request.end_date)
            return _call(name, city=cities[0], month=request.month or (dt.date.today().month % 12) + 1)
        codes = [r["currency_code"] for n, r in results if n == "get_destination" and isinstance(r, dict)]
        if name == "convert_currency" and request.budget and codes:
            amount, currency = request.budget
            return _call(name, amount=amount, from_currency=currency, to_currency=codes[0])
        call = _intent(text, request)
        return call if call is not None and call["function"]["name"] == name else None

    def _reply(self, model, messages, tools, options) -> Reply:
        misbehaviour = self._misbehave(model, messages, tools)
        if misbehaviour is not None:
            return misbehaviour
        users = [m.get("content") or "" for m in messages if _is_request(m)]
        # The latest request wins; a follow-up ("make it 5 days") keeps what it does not restate.
        request = read_request(users[-1] if users else "")
        for earlier in reversed(users[:-1]):
            request = request.filled_from(read_request(earlier))
        last_user = max((i for i, m in enumerate(messages) if _is_request(m)), default=0)
        this_turn = messages[last_user:]
        offered = {t["function"]["name"] for t in tools or []}
        results = _tool_results(this_turn)
        role = _role(messages, tools)
        if role == "Assistant":
            reply = self._corrupted(model, self._assistant(users[-1] if users else "", request, offered, this_turn))
            if model.startswith("misbehave-vague") and not reply.tool_calls:
                reply.content = "I looked that up for you; it all seems fine."  # ignores what the tool said
            return reply
        if role == "Researcher":
            return self._researcher(request, results, offered, this_turn)
        if role == "Weather":
            return self._weather(request, results, offered, this_turn)
        return self._planner(request, results, offered, this_turn)

    # Each agent calls its tools once per turn: "called" = tool messages after its own system prompt.
    @staticmethod
    def _called(this_turn: list[dict[str, Any]], offered: set[str], name: str) -> bool:
        own = _own_messages(this_turn)
        return any(m.get("role") == "tool" and m.get("tool_name") == name for m in own) and name in offered

    def _researcher(self, request: Request, results, offered, this_turn) -> Reply:
        if not request.cities:
            return Reply(content="Which city would you like to visit? Tell me the destination and the month.")
        own = _own_messages(this_turn)
        if "get_destination" in offered and not any(m.get("role") == "tool" for m in own):
            calls = [_call("get_destination", city=c) for c in request.cities]
            if request.origin and "time_difference" in offered:
                calls.append(_call("time_difference", from_city=request.origin, to_city=request.cities[0]))
            return Reply(tool_calls=calls)
        destinations = [r for n, r in results if n == "get_destination" and isinstance(r, dict)]
        if (
            request.budget
            and destinations
            and "convert_currency" in offered
            and not self._called(this_turn, offered, "convert_currency")
        ):
            amount, currency = request.budget
            return Reply(tool_calls=[_call("convert_currency", amount=amount, from_currency=currency,
                                           to_currency=destinations[0]["currency_code"])])  # fmt: skip
        lines = []
        for d in destinations:
            pois = ", ".join(p["name"] for p in d["points_of_interest"][:3])
            lines.append(
                f"{d['city']}, {d['country']} ({d['region']}, {d['continent']}). "
                f"Languages: {', '.join(d['languages'])}. Currency: {d['currency_name']} ({d['currency_code']}). "
                f"Time zone: {d['timezone']}. Points of interest: {pois}."
            )
        for name, r in results:
            if name == "convert_currency" and isinstance(r, dict):
                lines.append(
                    f"Budget: {r['amount']:g} {r['from_currency']} is about {r['converted']:,.2f} "
                    f"{r['to_currency']} (ECB rate of {r['rate_date']})."
                )
            elif name == "time_difference" and isinstance(r, dict):
                lines.append(f"Time difference: {r['summary']}")
            elif _is_error(r):
                lines.append(f"A tool reported a problem: {str(r)[:200]}")
        return Reply(content="\n".join(lines) or "The tools returned nothing I can use.")

    def _weather(self, request: Request, results, offered, this_turn) -> Reply:
        own = _own_messages(this_turn)
        cities = [r["city"] for n, r in results if n == "get_destination" and isinstance(r, dict)] or request.cities
        if "get_climate" in offered and not any(m.get("role") == "tool" for m in own) and cities:
            if request.month is None and request.start_date:
                return Reply(tool_calls=[_call("get_climate", city=c, start_date=request.start_date,
                                               end_date=request.end_date) for c in cities])  # fmt: skip
            month = request.month or (dt.date.today().month % 12) + 1
            return Reply(tool_calls=[_call("get_climate", city=c, month=month) for c in cities])
        lines = []
        for name, r in _tool_results(own):
            if name != "get_climate":
                continue
            if not isinstance(r, dict):
                lines.append(f"Climate data unavailable: {str(r)[:200]}")
                continue
            for m in r["months"]:
                lines.append(
                    f"{r['city']} in {m['month_name']}: highs around {m['high_c']:g} °C, lows around "
                    f"{m['low_c']:g} °C, {m['precip_mm']:g} mm of rain over about {m['rainy_days']:g} days. "
                    f"Pack: {', '.join(m['pack'])}."
                )
            lines.append(f"Note: {r['note']}")
        return Reply(content="\n".join(lines) or "I could not get climate normals for this trip.")

    def _planner(self, request: Request, results, offered, this_turn) -> Reply:
        own = _own_messages(this_turn)
        destinations = [r for n, r in results if n == "get_destination" and isinstance(r, dict)]
        if len(destinations) > 1 and "travel_distance" in offered and not any(m.get("role") == "tool" for m in own):
            pairs = itertools.pairwise(destinations)
            return Reply(
                tool_calls=[_call("travel_distance", from_city=a["city"], to_city=b["city"]) for a, b in pairs]
            )
        if not destinations:
            return Reply(content="I cannot plan without facts about the destination; please name a city.")
        climates = {r["city"]: r for n, r in results if n == "get_climate" and isinstance(r, dict)}
        lines = [f"# {request.days}-day plan: {' and '.join(d['city'] for d in destinations)}", ""]
        stops = [d for d in destinations for _ in range(max(1, request.days // len(destinations)))]
        stops += [destinations[-1]] * (request.days - len(stops))
        for day, d in enumerate(stops[: request.days], start=1):
            pois = d["points_of_interest"]
            pick = [pois[(day * 3 + k) % len(pois)]["name"] for k in range(3)] if pois else ["the old town"] * 3
            lines.append(
                f"Day {day} ({d['city']}): morning at {pick[0]}; afternoon at {pick[1]}; evening around {pick[2]}."
            )
        for n, r in results:
            if n == "travel_distance" and isinstance(r, dict):
                lines.append(f"Getting there: {r['from_city']} to {r['to_city']} is {r['distance_km']:g} km, "
                             f"about {r['travel_hours']:g} h by {r['mode']}.")  # fmt: skip
        facts = []
        for d in destinations:
            facts.append(f"currency {d['currency_name']} ({d['currency_code']}) in {d['city']}")
            facts.append(f"time zone {d['timezone']}")
            c = climates.get(d["city"])
            if c:
                m = c["months"][0]
                facts.append(f"{m['month_name']} highs {m['high_c']:g} °C and lows {m['low_c']:g} °C")
                packing = []
                if c["rain_likely"]:
                    packing.append("pack for rain (umbrella or rain jacket)")
                if c["heat_likely"]:
                    packing.append("pack for heat (sun hat, sunscreen, water)")
                if c["cold_likely"]:
                    packing.append("pack warm layers for the cold")
                lines.append(f"Packing for {d['city']}: " + ("; ".join(packing) or "light layers will do") + ".")
        lines += ["", "Facts used: " + "; ".join(facts) + "."]
        return Reply(content="\n".join(lines))

    # --- a general assistant with every tool (`main.py fitness` drives this) ---------------------

    def _assistant(self, text: str, request: Request, offered: set[str], this_turn) -> Reply:
        own = _own_messages(this_turn)
        results = _tool_results(own)
        if results:
            return Reply(content="\n".join(f"From {name}: {_facts(result)}" for name, result in results))
        call = _intent(text, request)
        if call is None or call["function"]["name"] not in offered:
            return Reply(content="I can help with destinations, climate, distances, time zones and currencies.")
        return Reply(tool_calls=[call])

    # --- the ways real models go wrong ----------------------------------------------------------

    @staticmethod
    def _corrupted(model: str, reply: Reply) -> Reply:
        """misbehave-wrongargs: the right tool, with arguments no tool accepts (an invented city)."""
        if model.startswith("misbehave-wrongargs"):
            for call in reply.tool_calls:
                arguments = call["function"]["arguments"]
                for key, value in arguments.items():
                    arguments[key] = "Atlantis" if isinstance(value, str) else -1
        return reply

    def _misbehave(self, model: str, messages, tools) -> Reply | None:
        if not model.startswith("misbehave-"):
            return None
        kind = model.split(":")[0].removeprefix("misbehave-")
        has_results = any(m.get("role") == "tool" for m in _own_messages(messages))
        first_tool = (tools or [{}])[0].get("function", {}).get("name", "get_destination")
        if kind == "badjson" and tools and not has_results:
            return Reply(tool_calls=[{"function": {"name": first_tool, "arguments": '{"city": "Lisbon"'}}])
        if kind == "notool" and tools and not has_results:
            return Reply(tool_calls=[_call("book_flight", city="Lisbon")])
        if kind == "loop" and tools:  # never stops calling tools (the same call, again and again)
            return Reply(
                tool_calls=[_call(first_tool, city="Lisbon", month=5 if first_tool == "get_climate" else None)]
            )
        if kind == "empty":
            return Reply(content="")
        offered = {t.get("function", {}).get("name") for t in tools or []}
        if kind == "answers" and offered & {"get_destination", "get_climate"} and not has_results:
            # answers at once instead of calling the tool it needs (the Planner needs none)
            return Reply(content="Lisbon is lovely in May; expect warm days. Pack light and enjoy the food.")
        system = " ".join(m.get("content") or "" for m in messages if m.get("role") == "system")
        if kind == "hasty" and "You are the Researcher" in system and not has_results:
            # Qwen2.5-Coder-1.5B on Reykjavik: every call at once, before get_destination has named the
            # currency, so the budget goes to EUR (the tool description's example); no time difference.
            request = read_request(next((m.get("content") or "" for m in messages if _is_request(m)), ""))
            calls = [_call("get_destination", city=c) for c in request.cities]
            if request.budget:
                amount, currency = request.budget
                calls.append(_call("convert_currency", amount=amount, from_currency=currency, to_currency="EUR"))
            return Reply(tool_calls=calls)
        if kind == "crash":  # Ollama dies after a few words of the first text reply
            return Reply(content="Lisbon is a wonderful city to visit in spring and", abort_after_chunks=3)
        if kind == "parse500" and tools:
            return Reply(
                error=(500, 'error parsing tool call: raw=\'{"name": "get_destination", "arguments": {"city\'')
            )
        return None


def _as_small_models_write(model: str, messages: list[dict[str, Any]], reply: Reply, options) -> Reply:
    """The scripted reply, as the small local models reported in issue 12 write it.

    misbehave-textcalls: tool calls as text, not through the tool-call channel: the Researcher one
        JSON object a line, the Weather agent in a ```json fence, the Planner in <tool_call> tags.
    misbehave-long: an agent's first answer runs past num_predict (done_reason "length"); told it
        was cut, it answers briefly.
    misbehave-repetitive: an agent's first answer repeats its lines; told so, it answers properly.
    misbehave-syntax: every answer is a tool call, as text, to a tool no agent has.
    misbehave-invent: the Weather agent's first answer makes up its temperatures; told so, it
        answers from the tool result.
    misbehave-embellish: the Weather agent's answer is right, plus a sentence with a temperature no
        tool returned.
    misbehave-turnaround: the Researcher states the time difference the wrong way round, its figure
        kept (as Qwen2.5-Coder-1.5B did: "New York City is 5 hours ahead of Reykjavik").
    (misbehave-answers, in TravelBrain._misbehave: answers at once without calling a tool; asked
        for a call's arguments with structured output, it gives them, and answers from the result.)
    (misbehave-hasty, also there: the Researcher makes every call at once, before get_destination has
        named the currency: the budget goes to EUR, and no time difference is asked for.)
    """
    kind = model.split(":")[0].removeprefix("misbehave-") if model.startswith("misbehave-") else ""
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    system = " ".join(m.get("content") or "" for m in messages if m.get("role") == "system")
    if kind == "textcalls" and reply.tool_calls:
        # As a 0.5B model does, the Researcher pastes the result it expects into time_difference's call.
        lines = [json.dumps({"name": c["function"]["name"], "arguments": {
                     **c["function"]["arguments"],
                     **({"summary": "London is 0 h behind"} if c["function"]["name"] == "time_difference" else {}),
                 }}) for c in reply.tool_calls]  # fmt: skip
        if "You are the Weather" in system:
            text = "```json\n" + "\n".join(lines) + "\n```"
        elif "You are the Planner" in system:
            text = "\n".join(f"<tool_call>\n{line}\n</tool_call>" for line in lines)
        else:
            text = "\n".join(lines)
        return Reply(content=text)
    if reply.tool_calls or not reply.content:
        return reply
    if kind == "long" and "cut off" not in last:
        limit = int(options.get("num_predict") or 2048)
        return Reply(content=reply.content + " More details follow." * limit)
    if kind == "repetitive" and "repeated itself" not in last:
        return Reply(content="\n".join([reply.content.splitlines()[0]] * 12))
    if kind == "invent" and "You are the Weather" in system and "no tool returned" not in last:
        return Reply(content="Expect highs around 41 °C and lows around 30 °C, with 120 mm of rain.")
    if kind == "embellish" and "You are the Weather" in system:
        return Reply(content=reply.content + "\nThe sea is a pleasant 24 °C for swimming.")
    if kind == "turnaround" and "You are the Researcher" in system:
        turned = re.sub(
            r"On [\d-]+, (.+?) is (\d+(?:\.\d+)?) h (ahead of|behind) (.+?)\.",
            lambda m: f"{m[1]} is {m[2]} hours {'behind' if m[3] == 'ahead of' else 'ahead of'} {m[4]}.",
            reply.content,
        )
        return Reply(content=turned)
    if kind == "syntax":
        return Reply(content=json.dumps({"name": "book_hotel", "arguments": {"city": "Lisbon", "nights": 3}}))
    return reply


def _intent(text: str, request: Request) -> dict[str, Any] | None:
    """The one tool call a question needs, read from its wording (what a fit model would do)."""
    lowered = text.lower()
    amount = re.search(rf"(\d[\d,]*(?:\.\d+)?)\s*{_CURRENCY}\b.*?\b(?:in|to|into)\s+{_CURRENCY}\b", text)
    if amount:
        return _call("convert_currency", amount=float(amount.group(1).replace(",", "")),
                     from_currency=amount.group(2), to_currency=amount.group(3))  # fmt: skip
    places = ([request.origin] if request.origin else []) + request.cities
    if re.search(r"time difference|what time", lowered) and len(places) >= 2:
        return _call("time_difference", from_city=places[0], to_city=places[1])
    if re.search(r"how far|distance", lowered) and len(places) >= 2:
        return _call("travel_distance", from_city=places[0], to_city=places[1])
    continent = re.search(r"\b(africa|asia|europe|north america|south america|oceania)\b", lowered)
    if continent and re.search(r"which cities|what cities|list", lowered):
        return _call("list_destinations", continent=continent.group(1).title())
    if re.search(r"weather|warm|cold|climate|temperature|rain", lowered) and places:
        return _call("get_climate", city=places[-1], month=request.month or 1)
    if places:
        return _call("get_destination", city=places[-1])
    return None


def _facts(result: Any) -> str:
    """A tool result retold briefly: its short fields, a few list items, the first of a list of records."""
    if not isinstance(result, dict):
        return str(result)[:300]
    parts = []
    for key, value in result.items():
        if isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) <= 40):
            parts.append(f"{key} {value}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            parts.append(f"{key}: {_facts(value[0])}")
        elif isinstance(value, list):
            parts.append(f"{key}: {', '.join(str(v) for v in value[:12])}")
    return "; ".join(parts)


# Agent Framework appends this user turn when a conversation ends on an assistant message
# (SequentialBuilder(ensure_trailing_user_turn=True)); it is not a request from the traveller.
CONTINUATION = "please continue."
# What the orchestrator sends after tool results (orchestrator.context_budget.AFTER_TOOLS): not a request.
# How the orchestrator hands an agent its turn (orchestrator.context_budget.HANDOFF_HEAD): the
# earlier agents' answers, not a request.
HANDOFF_HEAD = "Your turn in the travel team"
# How the orchestrator's corrections and requests for a required call begin (orchestrator.answers
# CORRECTIONS, orchestrator.guarded.ASK_ARGUMENTS): instructions about the answer, not requests.
ORCHESTRATOR_STARTS = ("Your last reply", "Your last answer", "Now write your answer", "First call ",
                       "Before answering, you must call")  # fmt: skip
AFTER_TOOLS_CLOSED = "Answer now from the tool results above."
AFTER_TOOLS = "Answer from the tool results above, or call another of your tools if you still need one."


def _is_request(message: dict[str, Any]) -> bool:
    text = (message.get("content") or "").strip()
    ours = text in (CONTINUATION, AFTER_TOOLS, AFTER_TOOLS_CLOSED) or text.startswith(
        (HANDOFF_HEAD, *ORCHESTRATOR_STARTS)
    )
    return message.get("role") == "user" and not ours


def _own_messages(this_turn: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages after the last plain assistant text: what this agent itself did so far this turn.

    Earlier agents end with a text reply; the current agent's tool calls and results follow it.
    """
    last_text = -1
    for i, m in enumerate(this_turn):
        if m.get("role") == "assistant" and (m.get("content") or "").strip() and not m.get("tool_calls"):
            last_text = i
        text = (m.get("content") or "").strip()
        if (
            m.get("role") == "user"
            and text not in (AFTER_TOOLS, AFTER_TOOLS_CLOSED)
            and not text.startswith(ORCHESTRATOR_STARTS)
        ):
            last_text = max(last_text, i)
    return this_turn[last_text + 1 :]
