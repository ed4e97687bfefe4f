from dashboard.views import alerts

alerts.render()
