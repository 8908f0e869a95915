"""Business analytics of orders, fulfilment, SKUs and customers: the periods and buckets they are counted
in (`periods`) and the rules that need no database (`rfm`); the queries are in db.analytics.
"""
