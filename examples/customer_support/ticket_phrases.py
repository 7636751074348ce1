"""Phrase bank for make_tickets.py: per-intent subjects, openers and details, plus the pieces
(names, products, greetings, tones, signatures, ambiguous tickets) that tickets are built from."""

from __future__ import annotations


def _items(block: str) -> list[str]:
    """Comma-separated names, wrapped over as many lines as needed."""
    return [s.strip() for s in block.replace("\n", " ").split(",") if s.strip()]


def _lines(block: str) -> list[str]:
    """One phrase per non-blank line; ``\\n`` in a phrase stands for a line break."""
    return [s.strip().replace("\\n", "\n") for s in block.strip().splitlines() if s.strip()]


# Slots filled per ticket: {order} {product} {amount} {plan} {new_plan} {date} {days} {weeks}
# {months} {last4} {email} {address} {city} {country} {seats}
INTENTS: dict[str, dict[str, list[str]]] = {
    "billing_refund": {
        "subjects": _lines("""
            Refund request
            Refund for order {order}
            Requesting my money back
            Return received but no refund
            refund??
            Where is my refund
        """),
        "openers": _lines("""
            I returned the {product} two weeks ago and still haven't received my refund.
            Could you please refund order {order}? I no longer need the {product}.
            I'd like a refund for the {product} I bought on {date}.
            The courier collected my return of order {order} on {date}, but no {amount} refund yet.
            The {product} doesn't suit me, so I'd like to send it back and get my {amount} back.
            I was told a refund of {amount} would be issued within 5 days. It has been {days} days.
            Please process a refund for {order}, the item arrived after the event I needed it for.
            How do I get my money back for the {product}? I sent it back already.
            I want a full refund for order {order}.
            Ordered the wrong model of the {product}, returned it, still waiting on the refund.
            My refund for order {order} shows as approved but nothing has reached my account.
            You accepted my return of the {product} on {date}, so where is my {amount}?
        """),
        "details": _lines("""
            The return tracking shows it was delivered to your warehouse on {date}.
            I paid with my card ending in {last4}.
            I'd prefer the money back on the original payment method, not store credit.
            I still have the return label and the receipt if you need them.
            It was a gift and the person already has one.
            Your website says refunds take 3-5 business days.
        """),
    },
    "billing_charge_dispute": {
        "subjects": _lines("""
            Unrecognised charge
            Charged twice
            Wrong amount billed
            What is this charge for?
            Double billing on my card
            Incorrect invoice
        """),
        "openers": _lines("""
            There is a charge of {amount} on my card from you that I don't recognise.
            I was charged twice for order {order}.
            My statement shows two payments of {amount} on {date} but I only placed one order.
            You billed me {amount} but the price at checkout was lower.
            Why was I charged {amount} on {date}? I didn't buy anything that day.
            My invoice this month is {amount}, way more than the {plan} plan should cost.
            There's a pending charge from Northwind on my card ending in {last4} I never authorised.
            You charged me for the {plan} plan even though I'm on the free tier.
            I'm disputing the {amount} charge from {date}.
            The discount code was accepted at checkout but I was charged the full {amount}.
            I got billed for shipping on order {order} even though it said free shipping.
            My bank flagged a charge of {amount} from your company as suspicious.
        """),
        "details": _lines("""
            I've attached a screenshot of my bank statement.
            If this isn't sorted out I'll have to call my bank and file a chargeback.
            Please explain what the charge is for or reverse it.
            The card ending in {last4} is the only one on my account.
            Nobody else in my household has access to my account.
            I checked my order history and there is only one order.
        """),
    },
    "account_login": {
        "subjects": _lines("""
            Can't log in
            Password reset not working
            Locked out of my account
            Login problem
            2FA code never arrives
            Cannot access account
        """),
        "openers": _lines("""
            I can't log into my account, it keeps saying my password is wrong.
            The password reset email never arrives at {email}.
            My account got locked after too many attempts and I can't get back in.
            I'm not receiving the two-factor code by SMS anymore.
            When I try to sign in the page just reloads and nothing happens.
            I changed my phone and now I can't get the verification code to log in.
            The reset link says it has expired every time I click it.
            I forgot which email I used to sign up and can't get into my account.
            Login fails with 'something went wrong' on both the app and the website.
            The sign in screen says my account doesn't exist but I've ordered from you before.
            I can't access my account to check on order {order}.
            Your app logs me out every few minutes and won't let me back in.
        """),
        "details": _lines("""
            I've tried clearing my cache and using a different browser.
            My username is {email}.
            I've checked my spam folder too.
            I need to get in to see my orders.
            It worked fine last week.
            I'm using the app on my phone.
        """),
    },
    "account_delete": {
        "subjects": _lines("""
            Delete my account
            Close account please
            Remove my personal data
            Account deletion request
            GDPR erasure request
            Please delete everything
        """),
        "openers": _lines("""
            Please delete my account and all the data you have on me.
            I want to close my account permanently.
            How do I delete my account? I can't find the option in settings.
            I'm requesting erasure of my personal data under GDPR.
            I no longer want an account with you, please remove it along with my email {email}.
            Please remove my account, I don't shop with you anymore.
            Can you permanently erase my profile, saved addresses and payment details?
            I'd like my customer account deleted, not just deactivated.
            I made a duplicate account by mistake, please delete the one under {email}.
            Delete my account. I don't want any more marketing emails either.
            I'm moving abroad and would like my account and order history deleted.
            Please close my account and confirm once all my data has been deleted.
        """),
        "details": _lines("""
            I don't have any open orders.
            Please confirm by email when it's done.
            I already unsubscribed from the newsletter but I still get emails.
            My account email is {email}.
            I don't want the data kept for 'analytics' either.
        """),
    },
    "shipping_delay": {
        "subjects": _lines("""
            Where is my order?
            Order {order} not delivered
            Late delivery
            Tracking hasn't updated
            Package still not here
            Delivery delayed again
        """),
        "openers": _lines("""
            My order {order} was supposed to arrive on {date} and it still hasn't come.
            The tracking for {order} hasn't updated in {days} days.
            Where is my package? I ordered the {product} {weeks} weeks ago.
            It says out for delivery since yesterday but nothing showed up.
            My {product} is late and I need it by the weekend.
            The delivery estimate keeps moving, first it was {date}, now it's next week.
            Order {order} shows as shipped but the courier says they never received it.
            I paid for express shipping and the {product} still isn't here.
            Tracking says delivered but there is no parcel at my door.
            Has order {order} even shipped yet? It's been {days} days.
            My package seems to be stuck at the depot in {city}.
            Still waiting for my order, can you tell me when it will arrive?
        """),
        "details": _lines("""
            It was meant to be a birthday present.
            I've checked with my neighbours and the building reception.
            Can you give me a real delivery date?
            If it doesn't arrive this week I'll have to buy it elsewhere.
            The courier's phone line just plays a recording.
            I need the {product} for work on Monday.
        """),
    },
    "shipping_address_change": {
        "subjects": _lines("""
            Change delivery address
            Wrong address on order {order}
            Update shipping address
            Need to redirect my package
            Address change
            Moved house - update order
        """),
        "openers": _lines("""
            I need to change the delivery address for order {order}.
            I entered the wrong address at checkout, it should be {address}.
            Can you ship order {order} to my work address instead? It's {address}.
            I just moved, please send my {product} to {address}, {city}.
            Is it possible to update the shipping address on an order that hasn't shipped yet?
            Please redirect my package to {address} because I won't be home.
            My apartment number is missing from the address on order {order}.
            Could you change the postcode on my order? I typed it wrong.
            I'd like order {order} delivered to my parents' place in {city} instead.
            The address on my order is my old one, please update it to {address}.
            Please update my delivery address before the {product} ships.
            Can the {product} go to {address} instead of the address on my account?
        """),
        "details": _lines("""
            The order was placed on {date}.
            The new address is {address}, {city}.
            Please let me know if it's too late to change it.
            Nobody will be at the old address to receive it.
            Same name, just a different address.
        """),
    },
    "product_defect": {
        "subjects": _lines("""
            Broken item
            {product} not working
            Defective product
            Item arrived damaged
            Faulty {product}
            Quality issue
        """),
        "openers": _lines("""
            The {product} I received won't turn on.
            My {product} arrived with a cracked case.
            After {days} days of use the {product} stopped working.
            The {product} makes a loud grinding noise and then shuts off.
            One of the parts was missing from the {product} box.
            The {product} arrived broken, the box was crushed.
            The battery in my {product} dies after about ten minutes.
            A piece snapped off my {product} the second time I used it.
            My {product} overheats and smells like burning plastic.
            The display on the {product} flickers constantly.
            The {product} from order {order} is faulty, it doesn't charge.
            I think I got a defective unit, the {product} keeps disconnecting.
        """),
        "details": _lines("""
            I've followed the troubleshooting steps in the manual.
            I can send photos or a video.
            I'd like a replacement, not a refund.
            It's only {weeks} weeks old.
            I'm worried it's a safety issue.
            I tried a different outlet and a different cable.
        """),
    },
    "cancel_subscription": {
        "subjects": _lines("""
            Cancel my subscription
            Stop auto-renewal
            Cancel membership
            Cancel {plan} plan
            Please cancel
            End my plan
        """),
        "openers": _lines("""
            Please cancel my {plan} subscription.
            I want to stop my membership from renewing next month.
            How do I cancel my {plan} plan? The button in settings doesn't work.
            Cancel my subscription effective immediately.
            I'd like to end my {plan} membership at the end of this billing period.
            I don't use the service enough anymore, please cancel my plan.
            Turn off auto-renew on my account please.
            I'm trying to cancel but the site keeps offering me discounts instead.
            Can you cancel the subscription for {email}?
            I signed up for the free trial and want to cancel before I'm charged.
            Please stop my monthly box, I no longer want it.
            I don't want to downgrade, just cancel the {plan} plan entirely.
        """),
        "details": _lines("""
            Please confirm the cancellation in writing.
            I don't need a refund, just make sure I'm not charged again.
            I've been a member for {months} months.
            It's too expensive for me right now.
            My account email is {email}.
        """),
    },
    "upgrade_plan": {
        "subjects": _lines("""
            Upgrade to {new_plan}
            Plan upgrade
            Add more seats
            Switch plans
            Upgrade question
            Move to annual {new_plan}
        """),
        "openers": _lines("""
            I'd like to upgrade from {plan} to {new_plan}.
            How do I add {seats} more seats to our team account?
            Can I switch to the annual {new_plan} plan and keep my current data?
            We're growing and need the {new_plan} plan, what's the process?
            Is it possible to upgrade mid-cycle and just pay the difference?
            I want the features in {new_plan}, please move my account over.
            Our team hit the user limit on {plan}, we need to upgrade.
            What does it cost to go from {plan} to {new_plan}?
            Please upgrade my account to {new_plan} starting today.
            The upgrade button on the billing page gives an error, can you upgrade me manually?
            I need more storage than {plan} gives me, which plan should I upgrade to?
            Can you move us to {new_plan} and invoice the company instead of my card?
        """),
        "details": _lines("""
            We currently have {seats} users.
            Our company will pay by invoice.
            Will the price be prorated?
            I'd like it done before our next billing date on {date}.
            Please keep all our existing settings.
        """),
    },
    "general_question": {
        "subjects": _lines("""
            Question
            Quick question
            Opening hours?
            Do you ship to {country}?
            Gift cards
            Product question
        """),
        "openers": _lines("""
            Do you ship to {country}?
            What are your customer service hours?
            Does the {product} come with a warranty?
            Can I buy a gift card online and send it by email?
            Is the {product} available in other colours?
            Do you have a physical store in {city}?
            Is the {product} compatible with 220V outlets?
            Do you offer student discounts?
            When will the {product} be back in stock?
            Can I change the language of the app to Spanish?
            What payment methods do you accept?
            Do you price match other retailers?
        """),
        "details": _lines("""
            I'm thinking of buying one for my mum.
            I couldn't find this in the FAQ.
            Just wondering before I place an order.
            A friend recommended your shop.
        """),
    },
}

# (intent, subject, body): tickets that touch two intents, labelled with the one to act on.
AMBIGUOUS: list[tuple[str, str, str]] = [
    (
        "cancel_subscription",
        "",
        "my order is late AGAIN and honestly i'm done. just cancel my {plan} membership",
    ),
    (
        "billing_refund",
        "Damaged and I want my money back",
        "The {product} arrived with a dent in the side. "
        "I don't want a replacement, I just want my {amount} back.",
    ),
    (
        "product_defect",
        "{product} stopped working",
        "The {product} stopped working after a week. "
        "Not sure if I should ask for a refund or a replacement, what do you suggest?",
    ),
    (
        "billing_charge_dispute",
        "Charged after cancelling",
        "I cancelled my plan last month but you still charged me {amount} on {date}. Why?",
    ),
    (
        "account_delete",
        "Can't log in - just delete it",
        "I can't log in anymore and honestly I don't care, "
        "please just delete the account for {email}.",
    ),
    (
        "shipping_address_change",
        "Order not shipped yet",
        "My order hasn't shipped yet which is actually good, because I moved. "
        "Can it go to {address} instead?",
    ),
    (
        "upgrade_plan",
        "Thinking about cancelling",
        "I was going to cancel, but if {new_plan} includes priority support "
        "I'd rather upgrade. Can you switch me?",
    ),
    (
        "general_question",
        "Before I cancel",
        "If I cancel my plan, do I lose my order history? Just asking for now.",
    ),
    (
        "shipping_delay",
        "Delivered but not received",
        "Tracking says the {product} was delivered but I never got it. "
        "Will you resend it or do I get a refund?",
    ),
    (
        "billing_charge_dispute",
        "Bill went up",
        "Why did my bill go up to {amount}? I didn't upgrade anything.",
    ),
    (
        "account_login",
        "Can't log in after upgrade",
        "After I upgraded to {new_plan} I can't log in anymore, it says my session is invalid.",
    ),
    (
        "product_defect",
        "Damaged item + new address",
        "The {product} arrived damaged. I've also moved since ordering, "
        "so please send the replacement to {address}.",
    ),
]

FIRST_NAMES = _items("""
Maria, James, Aisha, Wei, Olivia, Mateo, Priya, Liam, Sofia, Kwame, Hannah, Diego, Yuki,
Fatima, Noah, Chloé, Arjun, Emma, Tomás, Grace, Oluwaseun, Lena, Daniel, Mei, Zoë, Omar,
Ingrid, Samuel, Nadia, Ravi
""")
LAST_NAMES = _items("""
Gonzalez, Smith, Khan, Chen, Brown, Rossi, Patel, O'Brien, Müller, Mensah, Kowalski,
Hernández, Tanaka, Ali, Johnson, Dubois, Nair, Wilson, Silva, Novak, Adeyemi, Larsen,
Cohen, Wong, Byrne, Haddad, Lindqvist, Okafor, Reyes, Singh
""")
PRODUCTS = _items("""
Aurora desk lamp, Breeze tower fan, Nimbus wireless earbuds, Pulse fitness tracker,
Harbor coffee grinder, Ember electric kettle, Drift noise-cancelling headphones,
Glow smart bulb, Atlas robot vacuum, Velo bike light, Whirl blender, Page e-reader,
Cosy space heater, Volt power bank
""")
PLANS = _items("""
Basic, Plus, Premium, Business
""")
CITIES = _items("""
Leeds, Austin, Toronto, Dublin, Melbourne, Portland, Manchester, Denver
""")
STREETS = _items("""
Maple Street, Harbor Road, Oak Avenue, Station Lane, King's Road, Elm Court,
Riverside Drive, Park Terrace
""")
COUNTRIES = _items("""
Canada, Ireland, Mexico, Australia, Germany, Japan, New Zealand
""")
MONTHS = _items("""
March, April, May, June
""")
EMAIL_DOMAINS = _items("""
example.com, example.org, mail.example.net
""")
WEEKDAYS = _items("""
Mon, Tue, Wed, Thu, Fri
""")
GREETINGS = _lines("""
Hi,
Hello,
Hi there,
Dear Northwind team,
Good morning,
Hey,
To whom it may concern,
Hi support,
Hello Northwind,
""")
POLITE = _lines("""
Thank you for your help.
Thanks so much in advance!
I appreciate your help with this.
Thanks, have a nice day.
Looking forward to hearing from you.
Any help would be appreciated.
""")
NEUTRAL = _lines("""
Please advise.
Let me know.
Thanks.
Please get back to me.
""")
ANGRY_OPEN = _lines("""
I'm really frustrated.
Unbelievable.
This is the third time I'm writing.
Seriously?
""")
ANGRY_CLOSE = _lines("""
This is ridiculous.
I am extremely disappointed with your service.
Fix this NOW.
This is the third time I've contacted you about this!!
Honestly, terrible service.
If I don't hear back today I'm leaving a review everywhere.
""")
FILLERS = _lines("""
I've been a customer for years and never had a problem before.
I already spoke to someone on the phone last week but nothing happened.
Sorry for the long message.
I know you're probably busy.
This is my first time contacting support.
I tried the chat on your website first but it kept disconnecting me after a few minutes.
I've looked through the help pages and the FAQ and found nothing about this situation.
To be honest I've had a really long week and this is the last thing I needed to deal with.
A friend recommended you and I'd really like to keep shopping here.
""")
SIGNATURES = [
    "Thanks,\n{first}",
    "Best regards,\n{name}",
    "Kind regards,\n{name}\n+1 555-01{phone}",
    "Cheers,\n{first}",
    "--\n{name}\nSent from my iPhone",
    "Sent from my iPhone",
    "Regards,\n{name}\nCustomer no. {custno}",
    "Sent from my Android phone",
]
QUOTES = [
    "On {weekday}, {month} {day} at {hour}:{minute}, Northwind Support "
    "<support@northwind.example> wrote:\n"
    "> Hi {first}, thanks for contacting Northwind.\n"
    "> We have received your request and will reply within 48 hours.\n"
    ">\n"
    "> Ticket reference: NW-{ref}",
    "-----Original Message-----\n"
    "From: Northwind Support <support@northwind.example>\n"
    "Sent: {weekday}, {month} {day}\n"
    "Subject: Your request NW-{ref}\n\n"
    "Thank you for your message. An agent will be in touch shortly.",
]
