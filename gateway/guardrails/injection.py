"""Prompt-injection detector (English and Korean): rules, then a learned scorer (``learned``).

Every rule is a precompiled regex over the *folded* text (see ``normalize.fold``)
with a weight in 0..1 and a short reason code. Per reason code the strongest
weight counts; reason scores combine by noisy-OR, so two independent medium
signals (e.g. a fake ``### SYSTEM`` header plus "from now on you are") add up.

Reason codes: ``override`` (instruction override), ``roleplay_jailbreak`` (DAN,
developer mode, "no restrictions" personas), ``prompt_extraction`` (system
prompt leak), ``delimiter_smuggling`` (chat-template tokens, fake system
headers, HTML comments addressed to the assistant), ``encoded_payload``
(base64/hex/rot13 that decodes to an injection), ``indirect_instruction``
(content addressed to "the AI" inside documents/tool output) and the qualifier
``embedded_in_task`` (injection inside text the user asked to translate/summarise).

Ordinary talk *about* injection is damped: when every hit sits inside quotes and
the text reads like a question about attacks/defences, the score is multiplied
by ``META_DAMPING``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass
from typing import Final

from gateway.guardrails.learned import LearnedInjectionModel
from gateway.guardrails.normalize import fold, strip_invisible

META_DAMPING = 0.35
# Roles whose content is a document (tool / function results): the learned layer adds its document head
# (sentence segments, ``LearnedInjectionModel.score_document``) for instructions embedded in the document.
DOCUMENT_ROLES: Final = frozenset({"tool", "function"})
# Rules at or above this score decide alone: the learned scorer is not run (the rules are the fast layer).
RULES_DECISIVE = 0.9

_F = re.IGNORECASE | re.DOTALL

# ---------------------------------------------------------------- English ----
_EN_OBJ = (
    r"(?:instructions?|prompts?|rules|directions?|directives?|guidelines?|guidance|constraints?|commands?|"
    r"orders|programming|polic(?:y|ies)|guardrails?|restrictions?|filters?|system message|system prompt|"
    r"configuration|training|limitations?|safeguards?|ethical guidelines|content polic(?:y|ies))"
)
_EN_FILL = (
    r"(?:all|any|every|each|the|your|these|those|of|previous|previously|prior|above|earlier|preceding|"
    r"foregoing|original|initial|old|existing|current|system|safety|default|developer|openai|anthropic|"
    r"given|above-mentioned|other|and|following|such|its|their|set|programmed|built-in|internal)"
)
_EN_VERB = (
    r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overrule|bypass|circumvent|skip|"
    r"discard|abandon|neglect|set aside|throw out|stop following|don'?t follow|do not follow|"
    r"no longer follow|cancel|void|nullify|erase|delete|drop)"
)
_ADDRESSEE = (
    r"(?:ai|a\.i\.|assistant|chatbot|chat bot|language model|llm|gpt|chatgpt|claude|copilot|agent|bot)"
)
_ADDRESSEE_KO = r"(?:ai|인공지능|어시스턴트|챗봇|에이전트|언어\s*모델|llm|비서)"

_RULES: list[tuple[str, float, str]] = [
    (
        "override",
        0.92,
        r"\b(?:ignore|ignoring|disregard|disregarding|forget|forgetting|override|overrule|"
        r"bypass|circumvent|skip|discard|abandon|neglect|set aside|throw out|stop following|"
        r"don'?t follow|do not follow|no longer follow|cancel|void|nullify|erase|delete|drop)\s+(?:(?:"
        r"all|any|every|each|the|your|these|those|of|previous|previously|prior|above|earlier|"
        r"preceding|foregoing|original|initial|old|existing|current|system|safety|default|"
        r"developer|openai|anthropic|given|above-mentioned|content|other|and|following|such|"
        r"its|their|set|programmed|built-in|internal)\s+){0,6}(?:instructions?|prompts?|rules|"
        r"directions?|directives?|guidelines?|guidance|constraints?|commands?|orders|programming|"
        r"polic(?:y|ies)|guardrails?|restrictions?|filters?|system message|system prompt|configuration"
        r"|training|limitations?|safeguards?|ethical guidelines|content polic(?:y|ies))\b",
    ),
    (
        "override",
        0.9,
        r"\b(?:ignore|disregard|forget)\s+(?:everything|all|anything|whatever)\s+(?:that\s+)?(?:(?:you"
        r"(?:'ve|\s+have|\s+were|\s+are)?\s+(?:been\s+)?(?:told|instructed|given|taught|programmed)|"
        r"(?:was\s+|i\s+)?(?:written|said|stated|mentioned)\s+(?:above|before|earlier))|above|"
        r"before(?:\s+this)?|prior|previously|so far|up to (?:now|this point))",
    ),
    (
        "override",
        0.9,
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+(?:of\s+)?)?(?:the|what(?:'s| is| was)?)\s+(?:above"
        r"|before|preceding|prior|written above)\b(?!\s*(?:-?mentioned\s+)?(?:error|warning|"
        r"typo|message|output|log|code|line|mistake|exception|traceback|stack|comment|question|"
        r"email|paragraph|draft|version|result|issue|bug|noise|part|section|formatting|example|"
        r"numbers?|data|one|request)s?\b)",
    ),
    (
        "override",
        0.6,
        r"\b(?:new|updated|real|actual|true|revised|override)\s+(?:system\s+)?(?:instructions?|"
        r"rules|directives?|orders)\s*(?::|follow|are\b|is\b)",
    ),
    (
        "override",
        0.55,
        r"\bfrom now on,?\s+(?:you\s+(?:are|will|must|shall|have no|can|no longer|only)|ignore|"
        r"disregard|act as|respond only|answer only)",
    ),
    (
        "override",
        0.5,
        r"\binstead,?\s+(?:you\s+(?:must|should|will)\s+)?(?:just\s+)?(?:say|output|print|"
        r"respond|reply|write)\s+(?:only\s+)?(?:with\s+)?[\"'“]",
    ),
    (
        "override",
        0.8,
        r"\byour (?:new|real|true) (?:task|purpose|goal|instructions?|role) (?:is|are|will be)\b",
    ),
    (
        "roleplay_jailbreak",
        0.9,
        r"\bdo anything now\b",
    ),
    (
        "roleplay_jailbreak",
        0.88,
        r"\b(?:you are|you're|act as|acting as|pretend to be|become|roleplay as|role-play as|"
        r"play the role of|respond as|answer as)\s+(?:now\s+)?(?:a\s+|an\s+|the\s+)?(?:dan|"
        r"stan|dude|aim|anti-dan|betterdan|developer mode)\b",
    ),
    (
        "roleplay_jailbreak",
        0.85,
        r"\b(?:dan|jailbreak|developer|god|sudo|unrestricted|unfiltered|evil)\s+mode\s+(?:is\s+)?(?:no"
        r"w\s+)?(?:enabled|activated|engaged|unlocked|output)\b",
    ),
    (
        "roleplay_jailbreak",
        0.85,
        r"\b(?:you are|you're)\s+(?:now\s+)?(?:in|running in|operating in)\s+(?:the\s+)?(?:developer|"
        r"dev|god|jailbreak|unrestricted|unfiltered|sudo|dan)\s+mode\b",
    ),
    (
        "roleplay_jailbreak",
        0.3,
        r"\b(?:enable|activate|enter|switch to|turn on)\s+(?:the\s+)?(?:developer|god|jailbreak|"
        r"dan)\s+mode\b",
    ),
    (
        "roleplay_jailbreak",
        0.82,
        r"\b(?:pretend|imagine|act|behave|respond|answer|roleplay|simulate|you are|you're|"
        r"as if you)\b[^.\n]{0,60}?\b(?:no|without|free from|free of|not bound by|unbound by|"
        r"ignoring|zero|devoid of)\s+(?:any\s+|all\s+)?(?:of\s+)?(?:your\s+)?(?:restrictions|"
        r"rules|filters|filtering|guidelines|limits|limitations|censorship|ethical|ethics|"
        r"moral|morals|content polic|safety|boundaries)",
    ),
    (
        "roleplay_jailbreak",
        0.88,
        r"\byou\s+(?:are|'re)\s+(?:now\s+)?(?:no longer|not)\s+(?:bound|restricted|limited|"
        r"constrained|governed)\s+by\b",
    ),
    (
        "roleplay_jailbreak",
        0.85,
        r"\b(?:you are|you're|act as|become|be|pretend to be)\s+(?:now\s+)?(?:an?\s+)?(?:completely\s+"
        r")?(?:unfiltered|uncensored|unrestricted|amoral|unethical|evil|jailbroken|unlimited|"
        r"unaligned)\s+(?:ai|assistant|chatbot|model|version|llm|bot|entity|character)\b",
    ),
    (
        "roleplay_jailbreak",
        0.8,
        r"\byou (?:have been|are now|were) (?:jailbroken|freed|liberated|unchained)\b",
    ),
    (
        "roleplay_jailbreak",
        0.75,
        r"\b(?:opposite mode|evil confidant|anti-dan|betterdan|maximum mode)\b",
    ),
    (
        "roleplay_jailbreak",
        0.7,
        r"\b(?:grandma|grandmother)\b.{0,120}\b(?:napalm|windows\s*(?:10|11|xp)?\s*(?:keys|"
        r"product keys|activation)|meth|explosives?)\b",
    ),
    (
        "roleplay_jailbreak",
        0.6,
        r"\b(?:two|both)\s+(?:responses|answers)\b.{0,80}\b(?:normal|classic|gpt)\b.{0,40}\b(?:dan|"
        r"jailbreak|developer mode|unfiltered)\b",
    ),
    (
        "prompt_extraction",
        0.88,
        r"\b(?:reveal|show|print|output|repeat|display|tell|give|share|leak|dump|expose|disclose|"
        r"recite|spell out|write out|paste|copy|return|echo|list|send|translate|summari[sz]e|"
        r"quote|paraphrase)\b(?:\s+(?:me|us|back|out|again|all|everything|exactly|verbatim|"
        r"word for word|in full|to me|of|in))*\s+(?:your|the|its)\s+(?:(?:full|entire|complete|"
        r"exact|original|initial|hidden|secret|internal|confidential|underlying|first|actual|"
        r"real|current)\s+)*(?:system\s*(?:prompt|message|instructions?)|(?:initial|original|"
        r"hidden|secret|internal|first|full|entire|exact) (?:prompt|instructions?|message|"
        r"rules|guidelines)|pre-?prompt|hidden (?:prompt|instructions?)|(?:instructions?|rules|"
        r"guidelines) you were given|meta-?prompt|developer (?:message|prompt|instructions?))\b",
    ),
    (
        "prompt_extraction",
        0.85,
        r"\bwhat(?:'s| is| are| were| was)\s+your\s+(?:(?:full|exact|original|initial|hidden|"
        r"secret|real|actual)\s+)*(?:system prompt|system message|instructions|initial prompt|"
        r"prompt|rules|guidelines|directives)\b",
    ),
    (
        "prompt_extraction",
        0.8,
        r"\b(?:repeat|print|output|echo|copy|recite|reproduce|write)\b.{0,30}?\b(?:words|text|"
        r"everything|all|content|instructions|tokens|lines)\s+(?:written\s+|that (?:appear|"
        r"came|come)s?\s+)?(?:above|before|preceding|prior to)\b(?!\s+(?:but|with|in\s+(?:french|"
        r"english|korean|spanish|german|japanese)))",
    ),
    (
        "prompt_extraction",
        0.6,
        r"\b(?:starting|begin(?:ning)?) with\s+(?:the\s+(?:words?|phrase)\s+)?[\"'“]?you are\b",
    ),
    (
        "prompt_extraction",
        0.85,
        r"\bwhat (?:were|are|have) you (?:been )?(?:told|instructed|programmed) to\b",
    ),
    (
        "prompt_extraction",
        0.7,
        r"\b(?:system|initial|hidden|original)\s+prompt\b.{0,40}\b(?:verbatim|word for word|"
        r"in full|exactly as|code block)\b",
    ),
    (
        "delimiter_smuggling",
        0.92,
        r"<\|im_start\|>\s*(?:system|assistant)",
    ),
    (
        "delimiter_smuggling",
        0.8,
        r"<<\s*/?sys\s*>>",
    ),
    (
        "delimiter_smuggling",
        0.45,
        r"\[/?inst\]",
    ),
    (
        "delimiter_smuggling",
        0.78,
        r"(?m)^\s*(?:#{2,}|={3,}|\*{2,}|-{3,})\s*(?:system|admin|administrator|developer|sys|"
        r"root|new instructions?|override)\b(?:\s*(?:prompt|message|override|note|update|instructions?"
        r"))?\s*(?:#{2,}|={3,}|\*{2,}|-{3,}|:)?\s*$",
    ),
    (
        "delimiter_smuggling",
        0.72,
        r"(?m)^\s*\[?(?:system|admin|developer)\s*(?:override|update|message|notice|note|alert|"
        r"instruction)?\]?\s*:\s*(?:you|ignore|disregard|new|from now|the assistant|reveal|"
        r"all)",
    ),
    (
        "delimiter_smuggling",
        0.72,
        r"</?(?:system|sys|admin|developer)(?:[_-]?(?:prompt|message|instructions?))?>",
    ),
    (
        "delimiter_smuggling",
        0.72,
        r"\[(?:system|admin|developer)\s*(?:message|note|override|prompt|instruction)s?\]",
    ),
    (
        "delimiter_smuggling",
        0.5,
        r"\b(?:end of (?:user )?(?:input|prompt|document|context)|begin(?:ning)? of (?:new |"
        r"system )?instructions)\b",
    ),
    (
        "indirect_instruction",
        0.8,
        r"\b(?:important|urgent|hidden|secret|special)?\s*(?:instructions?|message|note|memo)\s+(?:for"
        r"|to)\s+(?:the\s+|any\s+|all\s+)?(?:ai|a\.i\.|assistant|chatbot|chat bot|language model|"
        r"llm|gpt|chatgpt|claude|copilot|agent|bot)s?\b\s*[:.,-]",
    ),
    (
        "indirect_instruction",
        0.75,
        r"\bif you are an?\s+(?:ai|llm|large language model|language model|assistant|chatbot|"
        r"automated)\b",
    ),
    (
        "indirect_instruction",
        0.7,
        r"\b(?:dear|attention|hey|hi)\s+(?:ai|a\.i\.|assistant|chatbot|chat bot|language model|"
        r"llm|gpt|chatgpt|claude|copilot|agent|bot)\b[^.\n]{0,40}\b(?:ignore|you must|please|"
        r"instead|do not|don't)\b",
    ),
    (
        "override",
        0.92,
        r"(?:(?:이전|이전의|앞의|앞선|앞에서|위의|위에|위|있는|적힌|나온|언급된|기존|기존의|"
        r"모든|지금까지|지금까지의|원래|원래의|초기|시스템|개발자|너의|네|당신의|주어진|받은|"
        r"들은|설정된|내려진|입력된|처음|기본)\s*(?:의\s*)?){1,3}(?:지시|지침|명령|규칙|프롬프트|"
        r"설정|제약|제한|안내|가이드라인|정책|지령|규정|룰)(?:사항|어|문)?(?:들)?\s*(?:을|"
        r"를|은|는|이나|도|과|와|에)?\s*(?:모두|전부|다|싹|완전히|전혀|모조리|일절)?\s*(?:무시|"
        r"잊어|잊고|잊으|잊을|무효|취소|따르지\s*(?:마|말|않)|버리|버려|폐기|삭제|지워|신경\s*쓰지|"
        r"어겨|어기)",
    ),
    (
        "override",
        0.45,
        r"(?:위|앞|이전)(?:의|에)?\s*(?:있는\s*)?(?:모든\s*)?(?:내용|말|글|것)\s*(?:은|는|"
        r"을|를|들은)?\s*(?:모두|전부|다)?\s*(?:무시|잊어|잊고)",
    ),
    (
        "override",
        0.6,
        r"새로운\s*(?:지시|명령|규칙|지침|임무)(?:사항)?\s*(?::|은\s|는\s|입니다|이다)",
    ),
    (
        "override",
        0.55,
        r"(?:지금부터|이제부터)\s*(?:너는|넌|당신은)\s*(?:오직|무조건|반드시)",
    ),
    (
        "override",
        0.8,
        r"(?:너의|네|당신의)\s*(?:진짜|새로운|실제)\s*(?:임무|목표|역할|지시)(?:는|은)",
    ),
    (
        "roleplay_jailbreak",
        0.85,
        r"(?:지금부터|이제부터|이제|앞으로)\s*(?:너는|넌|당신은)[^.\n]{0,40}?(?:제한|제약|"
        r"검열|규칙|필터|윤리|규제)(?:\s*같은\s*것)?\s*(?:이|가|도)?\s*(?:없는|없이|없다|없어|"
        r"없습니다|해제|무시|받지)",
    ),
    (
        "roleplay_jailbreak",
        0.82,
        r"(?:제한|제약|검열|필터|규칙|윤리(?:적)?\s*(?:기준|가이드라인|제약)?)\s*(?:이|가|"
        r"을|를|에서|에)?\s*(?:모두\s*)?(?:없는|없이|벗어난|해제된|풀린|무시하는|얽매이지\s*않는)\s*(?"
        r":ai|인공지능|챗봇|모드|어시스턴트|상태|버전|존재|캐릭터)",
    ),
    (
        "roleplay_jailbreak",
        0.82,
        r"탈옥\s*(?:모드|프롬프트)\s*(?:를|을|가|이)?\s*(?:활성|on|켜|시작|진입|적용)",
    ),
    (
        "roleplay_jailbreak",
        0.82,
        r"(?:너는|넌|당신은)\s*(?:이제\s*)?(?:탈옥|해방|해제)(?:된|됐|되었)",
    ),
    (
        "roleplay_jailbreak",
        0.82,
        r"(?:(?:너는|넌|당신은|이제|지금부터)[^.\n]{0,20}개발자\s*모드|개발자\s*모드\s*(?:가|"
        r"이)?\s*(?:활성화\s*(?:되었|됐|된)|켜졌|켜진)|개발자\s*모드로\s*(?:응답|대답|답변|"
        r"작동|행동|전환))",
    ),
    (
        "roleplay_jailbreak",
        0.85,
        r"\b(?:dan|stan)\s*(?:으로|처럼|이야|이다|입니다|이에요|모드|역할)",
    ),
    (
        "prompt_extraction",
        0.85,
        r"(?:시스템|초기|원래|숨겨진|내부|처음|최초|비밀)\s*(?:의\s*|에\s*)?(?:받은\s*|주어진\s*|"
        r"설정된\s*|입력된\s*)?(?:프롬프트|지시|지침|설정|명령|메시지|규칙)(?:사항|문)?\s*(?:을|"
        r"를|전체를|전문을|내용을)\s*(?:전부|모두|그대로|원문\s*그대로|있는\s*그대로|정확히|"
        r"한\s*글자도\s*빠짐없이|글자\s*그대로|다)?\s*(?:알려|보여|출력|공개|말해|반복|복사|"
        r"적어|노출|유출|누설|뱉어|읊어|번역)",
    ),
    (
        "prompt_extraction",
        0.85,
        r"(?:너의|네|당신의|너한테|너에게)\s*(?:주어진\s*|설정된\s*|입력된\s*)?(?:시스템\s*프롬프트|"
        r"프롬프트|지시\s*사항|지시사항|지시|초기\s*설정|규칙|지침)\s*(?:은|는|이|가|을|를)?\s*(?:전부"
        r"|모두|그대로)?\s*(?:뭐|무엇|알려|보여|출력|공개|말해|적어)",
    ),
    (
        "prompt_extraction",
        0.72,
        r"(?:위|앞|이전)\s*(?:의|에\s*있는)?\s*(?:모든\s*)?(?:지시|지침|텍스트|문장|프롬프트|"
        r"단어)\s*(?:을|를)?\s*(?:그대로|전부|모두)\s*(?:출력|반복|복사|보여)",
    ),
    (
        "prompt_extraction",
        0.8,
        r"(?:어떤|무슨)\s*(?:지시|지시사항|명령|지침)(?:을|를)\s*(?:받았|들었)",
    ),
    (
        "delimiter_smuggling",
        0.78,
        r"(?m)^\s*(?:#{2,}|\[|={3,})\s*(?:시스템|관리자|개발자)\s*(?:메시지|공지|지시|알림)?\s*(?:\]|"
        r"#{2,}|={3,}|:)?\s*$",
    ),
    (
        "delimiter_smuggling",
        0.65,
        r"(?:시스템|관리자)\s*(?:메시지|공지|알림|지시|명령)\s*[:\]]",
    ),
    (
        "indirect_instruction",
        0.8,
        r"(?:ai|인공지능|어시스턴트|챗봇|에이전트|언어\s*모델|llm|비서)\s*(?:에게|한테|을\s*위한|"
        r"를\s*위한)\s*(?:중요한\s*|숨겨진\s*|특별\s*)?(?:지시|안내|메모|참고|명령|메시지)",
    ),
    (
        "indirect_instruction",
        0.75,
        r"(?:당신|너|네)(?:가|는|이)\s*(?:ai|인공지능|어시스턴트|챗봇|에이전트|언어\s*모델|"
        r"llm|비서)(?:라면|이라면)",
    ),
    (
        "delimiter_smuggling",
        0.45,
        r"<\|(?:im_start|im_end|endoftext|end_header_id|eot_id|begin_of_text|user)\|>",
    ),
    (
        "delimiter_smuggling",
        0.8,
        r"<\|(?:system|assistant)\|>|<\|start_header_id\|>\s*system",
    ),
    (
        "indirect_instruction",
        0.75,
        r"(?:ai|인공지능|어시스턴트|챗봇|에이전트|언어\s*모델|llm)\s*(?:에게|한테)\s*[:：]",
    ),
]

# Content addressed to "the assistant" is only suspicious in tool/document content;
# strong = urgency or override.
_TOOL_ADDRESSED_STRONG = re.compile(
    rf"(?:\b{_ADDRESSEE}s?\b[^\n]{{0,40}}\b(?:must now|should now|must immediately|will now|needs? to now|"
    r"must instead|should instead|must not tell|without telling|are instructed to|is instructed to)\b"
    rf"|{_ADDRESSEE_KO}\s*(?:는|은|이|가|에게|한테)\s*[^\n]{{0,60}}(?:반드시|즉시|몰래|알리지\s*말고|무조건))",
    _F,
)
_TOOL_ADDRESSED_WEAK = re.compile(
    rf"(?:\b{_ADDRESSEE}s?\b[^.\n]{{0,40}}\b(?:must|should|need to|please)\b"
    r"[^.\n]{0,60}\b(?:ignore|instead|send|forward|email|transfer|reveal|include|tell the user|recommend|"
    rf"click|visit|execute|run|call|delete|output)\b|{_ADDRESSEE_KO}\s*(?:는|은|이|가|에게|한테)\s*[^.\n]{{0,40}}"
    r"(?:무시|대신|보내|전송|송금|이체|공개|출력|추천|삭제|실행))",
    _F,
)
# (strong, weak) weight per role; the weak pattern alone never reaches the threshold in user messages.
_TOOL_WEIGHT = {"tool": (0.8, 0.45), "function": (0.8, 0.45), "user": (0.4, 0.0), "assistant": (0.4, 0.0)}

_ADDRESSEE_GATE = re.compile(
    r"ai|assistant|bot|model|llm|gpt|claude|copilot|agent|인공지능|어시스턴트|에이전트|비서"
)
_HTML_COMMENT = re.compile(r"<!--(.{0,800}?)-->", re.DOTALL)
_COMMENT_ADDRESSEE = re.compile(rf"\b{_ADDRESSEE}\b|{_ADDRESSEE_KO}|\byou\b|너|당신", re.IGNORECASE)
_COMMENT_IMPERATIVE = re.compile(
    r"\b(?:ignore|instead|must|do not|don't|tell|say|reply|respond|send|include|output|print|reveal|"
    r"recommend|forward|praise|rate|approve|summari[sz]e as)\b|"
    r"무시|대신|반드시|말해|출력|보내|추천|포함|무조건|"
    r"줘|주세요|하세요|해라",
    re.IGNORECASE,
)

_META_CUE = re.compile(
    r"\b(?:what is|what's|what are|explain|defen[dcs]\w*|detect\w*|prevent\w*|mitigat\w*|protect\w*|"
    r"examples? of|attacks?|attackers?|research|paper|article|blog|security|red[- ]team\w*|"
    r"how (?:do|can|should|would) (?:i|we|you)|is it safe|vulnerab\w*|guardrails?)\b|"
    r"방어|탐지|막는|막을|막으려|예시|무엇인가|뭐야|뭔가요|설명|차단|공격|대응|방지|보안|취약",
    re.IGNORECASE,
)
_QUOTES_OPEN = '"“「『‘`«'
_QUOTES_CLOSE = '"”」』’`»'

_TASK_CUE = re.compile(
    r"\b(?:translate|summari[sz]e|summary|proofread|paraphrase|classify|analy[sz]e|correct|rewrite|review|"
    r"extract|tl;?dr)\b|번역|요약|교정|분석|정리|검토|다듬어|다음\s*(?:글|문서|텍스트|이메일|리뷰|내용)",
    re.IGNORECASE,
)

_B64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=_-])")
_B64URL_RUN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{24,}={0,2}(?![A-Za-z0-9=_-])")
_HEX_RUN = re.compile(
    r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}[ :]?){16,}(?![0-9A-Fa-f])|(?:\\x[0-9A-Fa-f]{2}){12,}"
)
_DECODE_REQUEST = re.compile(
    r"\b(?:decode|decrypt|base64|hex|rot-?13)\b.{0,60}"
    r"\b(?:follow|execute|obey|do what|carry out|run|act on|perform)"
    r"|(?:디코딩|복호화|해독|base64|hex)\S*\s*(?:한\s*)?.{0,30}(?:따라|실행|수행|지시대로|그대로\s*해)",
    _F,
)
_DECODE_GATES = ("decod", "decrypt", "base64", "hex", "rot", "디코딩", "복호화", "해독")
_ROT13 = re.compile(r"\brot-?13\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class InjectionResult:
    score: float
    reasons: tuple[str, ...]
    learned_score: float | None = None  # the learned scorer's score (policy scale), None when it did not run
    rules_score: float | None = None  # the rules' own score when the learned one raised ``score``


_SQ_OPEN = re.compile(r"(?:^|(?<=[^\w']))'(?=\w)")
_SQ_CLOSE = re.compile(r"(?<=[\w.!?])'(?:$|(?=[^\w']))")


def _in_quotes(text: str, pos: int) -> bool:
    window = text[max(0, pos - 300) : pos]
    if "'" in window:
        lo = max(0, pos - 300)
        opens = [m.start() for m in _SQ_OPEN.finditer(text, lo, pos + 1) if m.start() < pos]
        if opens:
            closes = [m.start() for m in _SQ_CLOSE.finditer(text, lo, pos)]
            if not closes or opens[-1] > closes[-1]:
                return True
    for o, c in zip(_QUOTES_OPEN, _QUOTES_CLOSE, strict=True):
        if o == c:
            if window.count(o) % 2 == 1:
                return True
        elif window.rfind(o) > window.rfind(c):
            return True
    return False


class InjectionDetector:
    """Precompiled rules, then (optionally) the learned scorer; ``score`` is pure and thread-safe.

    The final score is the larger of the rule score and the learned score (both on the policy scale where
    0.5 is the operating threshold); the reason ``learned`` says the learned scorer crossed 0.5.
    """

    def __init__(self, model: LearnedInjectionModel | None = None) -> None:
        # The folded text is already lower-case: no IGNORECASE (it makes Python's re markedly slower).
        self._rules = [(code, w, re.compile(p, re.DOTALL)) for code, w, p in _RULES]
        self.model = model

    def _rule_scores(self, folded: str, role: str) -> tuple[dict[str, float], bool]:
        """Per-reason max weight, and whether every hit sits inside quotes."""
        best: dict[str, float] = {}
        all_quoted = True
        for code, w, rx in self._rules:
            if w <= best.get(code, 0.0):
                continue
            m = rx.search(folded)
            if m is None:
                continue
            best[code] = w
            if all_quoted and not _in_quotes(folded, m.start()):
                all_quoted = False
        strong_w, weak_w = _TOOL_WEIGHT.get(role, (0.0, 0.0))
        for tw, trx in ((strong_w, _TOOL_ADDRESSED_STRONG), (weak_w, _TOOL_ADDRESSED_WEAK)):
            if tw > best.get("indirect_instruction", 0.0) and _ADDRESSEE_GATE.search(folded):
                m = trx.search(folded)
                if m is not None:
                    best["indirect_instruction"] = tw
                    if not _in_quotes(folded, m.start()):
                        all_quoted = False
        if "<!--" in folded:
            for cm in _HTML_COMMENT.finditer(folded):
                body = cm.group(1)
                if _COMMENT_ADDRESSEE.search(body) and _COMMENT_IMPERATIVE.search(body):
                    best["delimiter_smuggling"] = max(best.get("delimiter_smuggling", 0.0), 0.85)
                    all_quoted = False
                    break
        return best, all_quoted

    def _decoded_payloads(self, raw: str) -> list[str]:
        out: list[str] = []
        for rx, urlsafe in ((_B64_RUN, False), (_B64URL_RUN, True)):
            for m in rx.finditer(raw):
                s = m.group(0)
                if s.startswith("eyJ") or not (any(c.isdigit() or c in "+/=_-" for c in s) or len(s) >= 32):
                    continue  # JWT headers are not instructions; plain long words are not base64
                try:
                    pad = s + "=" * (-len(s) % 4)
                    data = base64.urlsafe_b64decode(pad) if urlsafe else base64.b64decode(pad, validate=True)
                    txt = data.decode("utf-8")
                except (binascii.Error, ValueError, UnicodeDecodeError):
                    continue
                if txt and sum(ch.isprintable() or ch.isspace() for ch in txt) / len(txt) > 0.9:
                    out.append(txt)
            if out:
                break
        for m in _HEX_RUN.finditer(raw):
            h = re.sub(r"[^0-9A-Fa-f]", "", m.group(0).replace("\\x", ""))
            try:
                txt = bytes.fromhex(h).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                continue
            if txt and sum(ch.isprintable() or ch.isspace() for ch in txt) / len(txt) > 0.9:
                out.append(txt)
        return out

    def score(self, text: str, *, role: str = "user", learned: bool = True) -> InjectionResult:
        """Rules first; the learned scorer when ``learned`` and a model is loaded and the rules did not
        already decide (score >= ``RULES_DECISIVE``)."""
        model = self.model if learned else None
        res = self._score_rules(text, role=role, model=model)
        if model is None or res.score >= RULES_DECISIVE or not text.strip():
            return res
        scored = model.score_document(text) if role in DOCUMENT_ROLES else model.score(text)
        ls = scored.score
        if ls < 0.5:
            return InjectionResult(res.score, res.reasons, ls)
        reasons = res.reasons if "learned" in res.reasons else (*res.reasons, "learned")
        return InjectionResult(round(max(res.score, ls), 4), reasons, ls, rules_score=res.score)

    def _score_rules(
        self, text: str, *, role: str, model: LearnedInjectionModel | None, _depth: int = 0
    ) -> InjectionResult:
        """The rules' score; decoded payloads (base64/hex/rot13) are also given to ``model`` when set."""
        if not text or not text.strip():
            return InjectionResult(0.0, ())
        folded = fold(text)
        best, all_quoted = self._rule_scores(folded, role)

        if _depth == 0:
            raw = strip_invisible(text)
            payloads: list[str] = []
            if len(raw) >= 24 and (_B64_RUN.search(raw) or _HEX_RUN.search(raw)):
                payloads.extend(self._decoded_payloads(raw))
            if _ROT13.search(folded):
                payloads.append(codecs.decode(raw, "rot13"))
            for p in payloads:
                sub = self._score_rules(p, role=role, model=None, _depth=1)
                if sub.score < 0.5 and model is not None and model.score(p).score >= 0.5:
                    sub = InjectionResult(0.75, ("learned",))
                if sub.score >= 0.5:
                    enc = min(0.95, sub.score + 0.05)
                    best["encoded_payload"] = max(best.get("encoded_payload", 0.0), enc)
                    all_quoted = False
            if any(k in folded for k in _DECODE_GATES) and _DECODE_REQUEST.search(folded):
                best["encoded_payload"] = max(best.get("encoded_payload", 0.0), 0.55)
                all_quoted = False

        if not best:
            return InjectionResult(0.0, ())
        miss = 1.0
        for w in best.values():
            miss *= 1.0 - w
        score = 1.0 - miss
        reasons = sorted(best, key=lambda c: -best[c])
        if all_quoted and _META_CUE.search(folded):
            score *= META_DAMPING
            reasons.append("quoted_discussion")
        elif score >= 0.5 and _TASK_CUE.search(folded):
            reasons.append("embedded_in_task")
        return InjectionResult(round(min(score, 1.0), 4), tuple(reasons))
